"""What the operator's work looks like from outside, for the tiers that run it: a
LeakIncident's status once the operator is done with it, the pages PagerDuty got."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canarywatch.incidents.receiver import EventsReceiver

__all__ = ["settled", "triggers"]


def settled(status: Mapping[str, Any]) -> dict[str, Any] | None:
    """An incident's ``status`` once paged (or not) and shut down (or not), else None."""
    paged = (status.get("paged") or {}).get("result")
    shutdown = status.get("shutdown") or {}
    if paged in ("Accepted", "Skipped", "Resolved") and (shutdown.get("done") or shutdown.get("skipped")):
        return dict(status)
    return None


def triggers(receiver: EventsReceiver) -> list[dict[str, Any]]:
    """The trigger events PagerDuty accepted, in order."""
    return [e for e in receiver.events if e["event_action"] == "trigger"]
