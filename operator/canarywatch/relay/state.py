"""The relay's operational state: kill switch, simulated outage, active fault, counters.

Pure bookkeeping: every method takes ``now`` instead of reading a clock, so the
outage → recovery → healed sequence is a deterministic function of time in tests.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass

from canarywatch.relay.config import Fault

__all__ = [
    "MAX_OUTAGE_SECONDS",
    "Counters",
    "KillRecord",
    "Phase",
    "RelayState",
]

# An outage longer than an hour is a typo in a test scenario, not a scenario.
MAX_OUTAGE_SECONDS = 3600.0


class Phase(enum.StrEnum):
    """Where the relay is in the outage cycle."""

    SERVING = "serving"
    OUTAGE = "outage"
    # Back up after an outage, caches rebuilt; the window in which wyze-2024 leaks.
    RECOVERING = "recovering"


@dataclass(frozen=True)
class KillRecord:
    """Who switched the integration off, when, and why (kept until resume)."""

    actor: str
    reason: str
    at: float


@dataclass
class Counters:
    """Monotonic counts reported by ``GET /v3/admin/state``."""

    frames_ingested: int = 0
    frames_pulled: int = 0
    pull_failures: int = 0
    frames_rejected: int = 0
    snapshots_served: int = 0
    stream_parts_served: int = 0
    low_variants_served: int = 0
    transcodes: int = 0
    transcode_failures: int = 0
    events_raised: int = 0
    thumbnails_served: int = 0
    segments_encoded: int = 0
    segments_served: int = 0
    hub_requests: int = 0
    hub_streams_issued: int = 0
    auth_failures: int = 0
    refused_disabled: int = 0
    refused_outage: int = 0
    outages: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class RelayState:
    """Kill switch, outage cycle and active fault of one running relay."""

    def __init__(self, *, fault: Fault, recovery_window_seconds: float) -> None:
        self.fault = fault
        self.counters = Counters()
        self._recovery_window = recovery_window_seconds
        self._kill: KillRecord | None = None
        self._outage_until: float | None = None

    @property
    def enabled(self) -> bool:
        return self._kill is None

    @property
    def kill_record(self) -> KillRecord | None:
        return self._kill

    def kill(self, *, actor: str, reason: str, now: float) -> bool:
        """Disable the integration; False (and the first record kept) if already off.

        Keeping the first record matters: a kill switch retried by an operator must
        not overwrite who actually stopped the leak and when.
        """
        if self._kill is not None:
            return False
        self._kill = KillRecord(actor=actor, reason=reason, at=now)
        return True

    def resume(self) -> bool:
        """Re-enable the integration; False if it was not disabled."""
        if self._kill is None:
            return False
        self._kill = None
        return True

    def set_fault(self, fault: Fault) -> bool:
        """Switch the reproduced incident class; False if it was already active."""
        if fault is self.fault:
            return False
        self.fault = fault
        return True

    def start_outage(self, seconds: float, *, now: float) -> float:
        """Go down for ``seconds`` (extending a running outage); returns its end."""
        if not math.isfinite(seconds) or not 0 < seconds <= MAX_OUTAGE_SECONDS:
            raise ValueError(f"outage seconds must be > 0 and <= {MAX_OUTAGE_SECONDS:g}, got {seconds}")
        until = now + seconds
        if self._outage_until is not None:
            until = max(until, self._outage_until)
        self._outage_until = until
        self.counters.outages += 1
        return until

    def phase(self, now: float) -> Phase:
        if self._outage_until is None:
            return Phase.SERVING
        if now < self._outage_until:
            return Phase.OUTAGE
        if now < self._outage_until + self._recovery_window:
            return Phase.RECOVERING
        return Phase.SERVING

    def outage_remaining(self, now: float) -> float:
        if self._outage_until is None:
            return 0.0
        return max(0.0, self._outage_until - now)

    def recovery_ends_at(self) -> float | None:
        """End of the latest recovery window, or None if there was never an outage."""
        if self._outage_until is None:
            return None
        return self._outage_until + self._recovery_window
