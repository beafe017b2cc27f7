"""PagerDuty Events API v2, in three layers, each usable on its own:

- ``incidents.events``: pure builders and the schema check (``build_event``,
  ``validate_event``, ``make_dedup_key``, ``severity_for_verdict``);
- ``incidents.outbox``: where events wait until PagerDuty has accepted them
  (``Outbox``, a JSON-lines file; ``MemoryOutbox``; or a store of the caller's);
- ``incidents.client``: ``PagerDutyClient``, the one delivery path (order, retries,
  coalescing).

What an incident's page says is ``incidents.pages``. This module is their public face.
"""

from canarywatch.incidents.client import DeliveryResult, Outcome, PagerDutyClient
from canarywatch.incidents.events import (
    EVENT_ACTIONS,
    EVENTS_URL,
    MAX_DEDUP_KEY_LENGTH,
    MAX_EVENT_BYTES,
    MAX_SUMMARY_LENGTH,
    ROUTING_KEY_LENGTH,
    SEVERITIES,
    SEVERITY_BY_VERDICT,
    InvalidEventError,
    PagerDutyError,
    build_event,
    make_dedup_key,
    placeholder_routing_key,
    severity_for_verdict,
    validate_event,
)
from canarywatch.incidents.outbox import MemoryOutbox, Outbox, OutboxEntry, OutboxError, OutboxStore

__all__ = [
    "EVENTS_URL",
    "EVENT_ACTIONS",
    "MAX_DEDUP_KEY_LENGTH",
    "MAX_EVENT_BYTES",
    "MAX_SUMMARY_LENGTH",
    "ROUTING_KEY_LENGTH",
    "SEVERITIES",
    "SEVERITY_BY_VERDICT",
    "DeliveryResult",
    "InvalidEventError",
    "MemoryOutbox",
    "Outbox",
    "OutboxEntry",
    "OutboxError",
    "OutboxStore",
    "Outcome",
    "PagerDutyClient",
    "PagerDutyError",
    "build_event",
    "make_dedup_key",
    "placeholder_routing_key",
    "severity_for_verdict",
    "validate_event",
]
