"""Incident records for standalone mode, and the `incidents.jsonl` journal they live in.

One record per incident (a leak storm is one incident with `occurrences`). The file is
a journal: every change appends the record's whole new state as one line, synced to
disk before the caller goes on, and the last line of an id is its latest state. A
restart recovers every record from it, and a clean exit compacts it to one line per
incident, from what the file holds (never from memory alone: memory may be a fresh
process that knows nothing). A line cut short by a crash is skipped with a warning.

A record also carries what the response intends (`intent`: page, kill switch), written
in the same line as the incident itself, so a crash between recording a leak and acting
on it leaves the intent on disk for the next run to finish.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from canarywatch.files import atomic_write

__all__ = ["IncidentLog", "IncidentLogError", "IncidentRecord", "Intent", "Shutdown"]

log = logging.getLogger(__name__)


class IncidentLogError(Exception):
    """`incidents.jsonl` cannot be read or written (the OSError is the cause)."""


@dataclass
class Intent:
    """What the response policy decided when the incident opened: recorded with it, so a
    restart finishes what a crash interrupted (and the kill cap counts past kills)."""

    page: bool = False
    kill: bool = False


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
    state: str = "Open"  # Open | Resolved (by `canarywatch resume`)
    occurrences: int = 1
    resolved_at: float | None = None
    paged_at: float | None = None
    pagerduty: dict[str, Any] = field(default_factory=dict)
    shutdown: Shutdown = field(default_factory=Shutdown)
    evidence: dict[str, Any] = field(default_factory=dict)
    intent: Intent = field(default_factory=Intent)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IncidentRecord:
        """A record as ``to_dict`` wrote it (``ValueError``/``TypeError``/``KeyError`` if not);
        fields it does not know are ignored, missing optional ones take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["shutdown"] = Shutdown(**dict(values.get("shutdown") or {}))
        values["intent"] = Intent(**dict(values.get("intent") or {}))
        record = cls(**values)
        if not isinstance(record.id, str) or not record.id:
            raise ValueError("record without an id")
        return record


class IncidentLog:
    """Keeps incidents in order, journalled to `path` (JSON lines); see the module docstring.

    Opening an existing journal recovers its records. ``save`` appends a record that
    changed; ``flush`` appends every record changed since (a caller may update a record
    in place and save it later) and compacts the journal.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._records: dict[str, IncidentRecord] = {}
        self._written: dict[str, str] = {}  # id → the line last appended for it
        self.recovered: tuple[IncidentRecord, ...] = ()
        if path is not None and path.exists():
            self._records = self._read()
            self._written = {i: _line(r) for i, r in self._records.items()}
            self.recovered = tuple(self._records.values())
            self._compact()

    def __len__(self) -> int:
        return len(self._records)

    def get(self, incident_id: str) -> IncidentRecord | None:
        return self._records.get(incident_id)

    def records(self) -> list[IncidentRecord]:
        return list(self._records.values())

    def save(self, record: IncidentRecord) -> None:
        """Journal ``record`` (durably, before returning) if it changed."""
        self._records[record.id] = record
        self._append([record])

    def flush(self) -> None:
        """Journal every record changed in place since it was saved, then compact."""
        self._append(list(self._records.values()))
        self._compact()

    def _append(self, records: list[IncidentRecord]) -> None:
        changed = [(r.id, _line(r)) for r in records if self._written.get(r.id) != _line(r)]
        if self.path is None or not changed:
            for incident_id, line in changed:
                self._written[incident_id] = line
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "ab") as handle:
                handle.write("".join(line + "\n" for _, line in changed).encode())
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise IncidentLogError(f"cannot append to {self.path}: {error}") from error
        for incident_id, line in changed:
            self._written[incident_id] = line

    def _read(self) -> dict[str, IncidentRecord]:
        assert self.path is not None
        try:
            raw = self.path.read_bytes()
        except OSError as error:
            raise IncidentLogError(f"cannot read {self.path}: {error}") from error
        records: dict[str, IncidentRecord] = {}
        for number, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                record = IncidentRecord.from_dict(json.loads(line))
            except (ValueError, TypeError, KeyError) as error:
                log.warning(
                    "%s: skipping unreadable line %d (%s); a write cut short by a crash?",
                    self.path,
                    number,
                    error,
                )
                continue
            records[record.id] = record  # later lines are later states
        return records

    def _compact(self) -> None:
        """One line per incident, from the journal's own content (re-read, not memory)."""
        if self.path is None or not self.path.exists():
            return
        records = self._read()
        data = "".join(_line(r) + "\n" for r in records.values()).encode()
        try:
            atomic_write(self.path, data)
        except OSError as error:
            raise IncidentLogError(f"cannot compact {self.path}: {error}") from error


def _line(record: IncidentRecord) -> str:
    return json.dumps(record.to_dict(), sort_keys=True)
