"""Incident records for standalone mode, and the `incidents.jsonl` they are written to.

One record per incident (a leak storm is one incident with `occurrences`), rewritten
atomically whenever it changes, so a reader never sees a half-written line and the
file always tells the latest state: paged or not, switched off or not, how fast.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from canarywatch.files import atomic_write

__all__ = ["IncidentLog", "IncidentRecord", "Shutdown"]


@dataclass
class Shutdown:
    done: bool = False
    seconds: float | None = None
    engaged_at: float | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None  # why no kill switch ran (mode, cap, rule)


@dataclass
class IncidentRecord:
    id: str
    integration: str
    probe: str
    verdict: str
    reason: str
    viewer_tenant: str
    viewer_camera: int | None
    stream: str
    path: str  # snapshot | mjpeg | thumbnail | probe
    network_profile: str
    observed_tenant: str | None  # only ever from a verified signature; None for foreign
    observed_camera: int | None
    observed_seq: int | None
    observed_time: float | None
    frame_received_at: float
    recorded_at: float
    detection_seconds: float
    mode: str
    state: str = "Open"
    occurrences: int = 1
    paged_at: float | None = None
    pagerduty: dict[str, Any] = field(default_factory=dict)
    shutdown: Shutdown = field(default_factory=Shutdown)
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class IncidentLog:
    """Keeps incidents in order and mirrors them to `path` (JSON lines) on every change."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._records: dict[str, IncidentRecord] = {}

    def __len__(self) -> int:
        return len(self._records)

    def get(self, incident_id: str) -> IncidentRecord | None:
        return self._records.get(incident_id)

    def records(self) -> list[IncidentRecord]:
        return list(self._records.values())

    def save(self, record: IncidentRecord) -> None:
        self._records[record.id] = record
        self.flush()

    def flush(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in self._records.values())
        atomic_write(self.path, lines.encode())
