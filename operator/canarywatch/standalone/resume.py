"""Which incident `canarywatch resume --incident ID` may resume: pure, checked before acting.

As the operator's ``kill-switch.canarywatch.io/resume=<incident>`` annotation: while the
kill switch holds the integration off (any state but ``Resumed``), only the incident it
holds for resumes it, so a stale id from last time cannot switch a live leak back on.
Otherwise the id must be an incident of the journal: an open one (alert-only, or a resume
a crash cut short) is resolved, a resolved one finishes what is left (a resolve still in
the outbox) and is otherwise a no-op.
"""

from __future__ import annotations

from canarywatch.incidents.records import IncidentRecord
from canarywatch.shutdown import KillSwitchRecord

__all__ = ["resume_refusal"]


def resume_refusal(
    incident: str, *, integration: str, switch: KillSwitchRecord | None, records: list[IncidentRecord]
) -> str | None:
    """Why ``incident`` cannot be resumed (a message naming what to pass), or None."""
    if switch is not None and switch.engaged:
        if incident == switch.incident:
            return None
        return (
            f"--incident {incident}: the kill switch holds {integration} off for incident "
            f"{switch.incident} ({switch.state}); pass --incident {switch.incident} to resume it"
        )
    known = [r for r in records if r.integration == integration]
    if any(r.id == incident for r in known):
        return None
    still_open = [r.id for r in known if r.state == "Open"]
    hint = f"; open incidents: {', '.join(still_open)}" if still_open else "; no incident is open"
    return f"--incident {incident}: no such incident of {integration} in incidents.jsonl{hint}"
