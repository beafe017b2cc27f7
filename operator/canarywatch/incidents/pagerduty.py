"""PagerDuty Events API v2: event builders, a durable outbox and a retrying client.

Three layers, each usable on its own:

- ``build_event`` / ``validate_event`` are pure: they produce and check the JSON object
  that ``POST /v2/enqueue`` accepts. The local receiver (``incidents.receiver``) runs the
  same ``validate_event`` on every request, so sender and test oracle cannot drift apart.
- ``Outbox`` (a JSON-lines file) and ``MemoryOutbox`` hold events until PagerDuty has
  accepted them. Delivery is at-least-once: an event whose 202 was lost to a crash is
  sent again after the restart, which is harmless because PagerDuty folds every trigger
  with an open ``dedup_key`` into the alert it already has.
- ``PagerDutyClient`` drains the outbox in order, retrying 429, 5xx and network errors
  with capped exponential backoff, and coalesces a leak storm into one page.

Privacy: an event never carries pixels. Callers put frame *hashes*, sizes, times and
*links* to evidence in ``custom_details``/``links``; ``validate_event`` refuses binary
values and inline ``data:`` URIs anywhere in ``custom_details``, the builder has no
``images`` argument, and ``links``/``images`` must be http(s) URLs. A ``foreign`` frame
may show a stranger's home: it must not reach a pager, a phone or a log line.

Secrets: the routing key is a credential for the PagerDuty service. It is stored in the
outbox file (mode 0600, needed to resend after a restart) but never logged, never echoed
in validation messages and never part of a ``DeliveryResult``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from canarywatch import __version__
from canarywatch.files import atomic_write
from canarywatch.retrying import backoff_delay
from canarywatch.verdicts import Verdict

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
    "severity_for_verdict",
    "validate_event",
]

log = logging.getLogger(__name__)

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
ROUTING_KEY_LENGTH = 32
MAX_DEDUP_KEY_LENGTH = 255
MAX_SUMMARY_LENGTH = 1024
MAX_EVENT_BYTES = 512 * 1024

# Leak verdicts page at the severity their response policy implies (DESIGN.md, verdicts
# table); `ok` is deliberately absent: nothing pages for a healthy frame.
SEVERITY_BY_VERDICT: Mapping[Verdict, str] = {
    Verdict.CROSS_TENANT: "critical",
    Verdict.FOREIGN: "critical",
    Verdict.MISROUTED: "error",
    Verdict.FORGED: "error",
    Verdict.STALE: "warning",
    Verdict.DEGRADED: "info",
    Verdict.UNDECODABLE: "info",
}

_EVENT_FIELDS = frozenset(
    {
        "routing_key",
        "event_action",
        "dedup_key",
        "payload",
        "client",
        "client_url",
        "links",
        "images",
    }
)
_PAYLOAD_FIELDS = frozenset(
    {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}
)
# PagerDuty error bodies end up in logs, DeliveryResult.reason and (via the operator)
# in CR status; cap them so a misbehaving endpoint cannot flood any of those.
_REASON_LIMIT = 300


class PagerDutyError(Exception):
    """Base class for errors raised by the PagerDuty pipeline."""


class InvalidEventError(PagerDutyError, ValueError):
    """An event breaks the Events API v2 schema; each problem names its field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class OutboxError(PagerDutyError):
    """The outbox file could not be read or written (the OSError is the cause)."""


# ---------------------------------------------------------------------------------------
# Pure builders
# ---------------------------------------------------------------------------------------


def severity_for_verdict(verdict: Verdict | str) -> str:
    """The PagerDuty severity for a leak verdict (``cross_tenant`` → ``critical`` …)."""
    known = {v.value: severity for v, severity in SEVERITY_BY_VERDICT.items()}
    try:
        return known[str(verdict)]
    except KeyError:
        accepted = ", ".join(sorted(known))
        raise InvalidEventError(
            [f"verdict: {str(verdict)!r} does not page; expected one of {accepted}"]
        ) from None


def make_dedup_key(*, integration: str, incident: str) -> str:
    """The stable ``dedup_key`` of one incident: same inputs, same key, in every process.

    Trigger, acknowledge and resolve of one incident must carry the same key, and a
    restarted operator must compute it again without stored state. Keys longer than
    PagerDuty's 255 characters keep a readable prefix and end in a SHA-256 of the whole.
    """
    for name, value in (("integration", integration), ("incident", incident)):
        if not isinstance(value, str) or not value:
            raise InvalidEventError([f"{name}: must be a non-empty string"])
    key = f"canarywatch/{integration}/{incident}"
    if len(key) <= MAX_DEDUP_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: MAX_DEDUP_KEY_LENGTH - len(digest) - 1]}~{digest}"


def build_event(
    *,
    action: str,
    routing_key: str,
    dedup_key: str,
    summary: str | None = None,
    source: str | None = None,
    severity: str | None = None,
    custom_details: Mapping[str, Any] | None = None,
    links: Sequence[Mapping[str, str]] | None = None,
    timestamp: datetime | str | None = None,
    component: str | None = None,
    group: str | None = None,
    cls: str | None = None,
) -> dict[str, Any]:
    """One Events API v2 event, validated; raises ``InvalidEventError`` naming the field.

    ``summary``, ``source`` and ``severity`` are required for ``trigger`` and refused for
    ``acknowledge``/``resolve`` (PagerDuty ignores a payload there; silently dropping
    caller data would hide a mistake). ``cls`` is the payload's ``class``. A datetime
    ``timestamp`` must be timezone-aware.

    Pass evidence as hashes and links only: there is no ``images`` argument on purpose,
    and ``custom_details`` may not contain bytes or ``data:`` URIs (see module docstring).
    The result is a deep copy: mutating the inputs later does not change a queued event.
    """
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None or timestamp.utcoffset() is None:
            raise InvalidEventError(
                ["payload.timestamp: datetime must be timezone-aware (use datetime.now(UTC))"]
            )
        timestamp = timestamp.isoformat()
    payload_fields = {
        "summary": summary,
        "source": source,
        "severity": severity,
        "timestamp": timestamp,
        "component": component,
        "group": group,
        "class": cls,
        "custom_details": custom_details,
    }
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key,
    }
    if action == "trigger":
        # The three required fields stay even when None, so validation names them.
        event["payload"] = {
            name: value
            for name, value in payload_fields.items()
            if value is not None or name in ("summary", "source", "severity")
        }
    elif action in EVENT_ACTIONS:  # an unknown action is reported by validate_event
        given = [name for name, value in payload_fields.items() if value is not None]
        if given:
            raise InvalidEventError(
                [
                    f"payload.{name}: only trigger events carry a payload; drop it from this {action} event"
                    for name in given
                ]
            )
    if links is not None:
        event["links"] = [dict(link) if isinstance(link, Mapping) else link for link in links]
    problems = validate_event(event)
    if problems:
        raise InvalidEventError(problems)
    copied: dict[str, Any] = json.loads(json.dumps(event))
    return copied


def validate_event(obj: object) -> list[str]:
    """Schema problems of an Events API v2 alert event; an empty list means valid.

    Each problem starts with the dotted path of the field (``payload.severity: …``).
    Stricter than PagerDuty in two ways, both on purpose: unknown fields are reported
    (PagerDuty would silently drop a misspelt one), and inline binary data is refused
    (privacy; see the module docstring). The routing key's value is never echoed.
    """
    if not isinstance(obj, Mapping):
        return [f"event: must be a JSON object, not {type(obj).__name__}"]
    problems = [
        f"{name}: unknown field (PagerDuty ignores it; check the spelling)"
        for name in sorted(set(obj) - _EVENT_FIELDS, key=str)
    ]
    routing_key = obj.get("routing_key")
    if not isinstance(routing_key, str) or len(routing_key) != ROUTING_KEY_LENGTH:
        problems.append(
            f"routing_key: required; the {ROUTING_KEY_LENGTH}-character integration key of "
            "an Events API v2 integration"
        )
    action = obj.get("event_action")
    if action not in EVENT_ACTIONS:
        problems.append(f"event_action: must be one of {', '.join(EVENT_ACTIONS)}, not {_shown(action)}")
    dedup_key = obj.get("dedup_key")
    if dedup_key is None:
        if action in ("acknowledge", "resolve"):
            problems.append(f"dedup_key: required for {action} events")
    elif not isinstance(dedup_key, str) or not dedup_key:
        problems.append("dedup_key: must be a non-empty string")
    elif len(dedup_key) > MAX_DEDUP_KEY_LENGTH:
        problems.append(f"dedup_key: {len(dedup_key)} characters; at most {MAX_DEDUP_KEY_LENGTH} allowed")
    payload = obj.get("payload")
    if action == "trigger" or payload is not None:
        problems += _payload_problems(payload, required=action == "trigger")
    for name in ("client", "client_url"):
        if name in obj and not isinstance(obj[name], str):
            problems.append(f"{name}: must be a string")
    if "client_url" in obj and isinstance(obj["client_url"], str):
        problems += _url_problems(obj["client_url"], "client_url", ("http", "https"))
    if "links" in obj:
        problems += _list_problems(
            obj["links"],
            "links",
            required="href",
            optional=("text",),
            url_fields={"href": ("http", "https")},
        )
    if "images" in obj:
        problems += _list_problems(
            obj["images"],
            "images",
            required="src",
            optional=("href", "alt"),
            url_fields={"src": ("https",), "href": ("http", "https")},
        )
    if not problems:
        size = len(json.dumps(obj, ensure_ascii=False).encode())
        if size > MAX_EVENT_BYTES:
            problems.append(f"event: {size} bytes; PagerDuty accepts at most {MAX_EVENT_BYTES}")
    return problems


def _payload_problems(payload: object, *, required: bool) -> list[str]:
    if not isinstance(payload, Mapping):
        what = "required for trigger events" if required else "must be"
        return [f"payload: {what} a JSON object with summary, source and severity"]
    problems = [
        f"payload.{name}: unknown field (PagerDuty ignores it; check the spelling)"
        for name in sorted(set(payload) - _PAYLOAD_FIELDS, key=str)
    ]
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary:
        problems.append("payload.summary: required, a non-empty string")
    elif len(summary) > MAX_SUMMARY_LENGTH:
        problems.append(f"payload.summary: {len(summary)} characters; at most {MAX_SUMMARY_LENGTH} allowed")
    source = payload.get("source")
    if not isinstance(source, str) or not source:
        problems.append("payload.source: required, a non-empty string (host or integration)")
    severity = payload.get("severity")
    if severity not in SEVERITIES:
        problems.append(f"payload.severity: must be one of {', '.join(SEVERITIES)}, not {_shown(severity)}")
    for name in ("component", "group", "class"):
        if name in payload and not isinstance(payload[name], str):
            problems.append(f"payload.{name}: must be a string")
    if "timestamp" in payload and not _is_iso_datetime(payload["timestamp"]):
        problems.append(
            "payload.timestamp: must be an ISO 8601 date-time such as 2020-01-02T08:42:58Z, "
            f"not {_shown(payload['timestamp'])}"
        )
    if "custom_details" in payload:
        details = payload["custom_details"]
        if not isinstance(details, Mapping):
            problems.append("payload.custom_details: must be a JSON object")
        else:
            inline = _inline_data_problems(details, "payload.custom_details")
            problems += inline
            if not inline:
                try:
                    json.dumps(details, allow_nan=False)
                except (TypeError, ValueError) as exc:
                    problems.append(f"payload.custom_details: not JSON-serializable ({exc})")
    return problems


def _list_problems(
    value: object,
    where: str,
    *,
    required: str,
    optional: Sequence[str],
    url_fields: Mapping[str, Sequence[str]],
) -> list[str]:
    if not isinstance(value, list | tuple):
        return [f"{where}: must be a list of objects"]
    problems: list[str] = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            problems.append(f"{at}: must be an object with {required!r}")
            continue
        problems += [
            f"{at}.{name}: unknown field" for name in sorted(set(item) - {required, *optional}, key=str)
        ]
        if required not in item:
            problems.append(f"{at}.{required}: required")
        for name in (required, *optional):
            if name not in item:
                continue
            if not isinstance(item[name], str):
                problems.append(f"{at}.{name}: must be a string")
            elif name in url_fields:
                problems += _url_problems(item[name], f"{at}.{name}", url_fields[name])
    return problems


def _url_problems(value: str, where: str, schemes: Sequence[str]) -> list[str]:
    parts = urlsplit(value)
    if parts.scheme.lower() in schemes and parts.netloc:
        return []
    # data: URIs land here too, which is what keeps inline images out of links.
    return [f"{where}: must be an absolute {' or '.join(schemes)} URL, not {_shown(value)}"]


def _inline_data_problems(value: object, where: str) -> list[str]:
    if isinstance(value, bytes | bytearray | memoryview):
        return [f"{where}: binary data is not allowed; send a hash or a link, never pixels"]
    if isinstance(value, str) and value[:5].lower() == "data:":
        return [f"{where}: inline data URIs are not allowed; send a hash or a link, never pixels"]
    if isinstance(value, Mapping):
        return [p for key, item in value.items() for p in _inline_data_problems(item, f"{where}.{key}")]
    if isinstance(value, list | tuple):
        return [p for i, item in enumerate(value) for p in _inline_data_problems(item, f"{where}[{i}]")]
    return []


def _is_iso_datetime(value: object) -> bool:
    if not isinstance(value, str) or "T" not in value.upper():
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _shown(value: object) -> str:
    # Bounded repr: validation messages are logged and returned in 400 bodies.
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


# ---------------------------------------------------------------------------------------
# Outbox
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxEntry:
    """One pending event; ``id`` is unique per outbox and stable across restarts."""

    id: str
    event: dict[str, Any]


class OutboxStore(Protocol):
    """A FIFO of events not yet accepted by PagerDuty (``Outbox``, ``MemoryOutbox``)."""

    def append(self, event: Mapping[str, Any]) -> OutboxEntry:
        """Store a copy of ``event`` at the end (on disk, for ``Outbox``, when this returns)."""
        ...

    def remove(self, entry_id: str) -> None:
        """Forget a delivered or rejected entry; unknown ids are ignored (idempotent)."""
        ...

    def pending(self) -> list[OutboxEntry]:
        """The pending entries, oldest first."""
        ...

    def __len__(self) -> int: ...


class _EntryList:
    def __init__(self) -> None:
        self._entries: list[OutboxEntry] = []

    def pending(self) -> list[OutboxEntry]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _new_entry(event: Mapping[str, Any]) -> OutboxEntry:
        # A JSON round trip both deep-copies and proves the event can be persisted, so
        # the memory and file variants accept exactly the same events.
        try:
            copied = json.loads(json.dumps(event, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise InvalidEventError([f"event: not JSON-serializable ({exc})"]) from exc
        return OutboxEntry(id=uuid.uuid4().hex, event=copied)


class MemoryOutbox(_EntryList):
    """Outbox kept in memory only, for callers that persist delivery state elsewhere
    (the operator records it in the ``LeakIncident`` status)."""

    def append(self, event: Mapping[str, Any]) -> OutboxEntry:
        entry = self._new_entry(event)
        self._entries.append(entry)
        return entry

    def remove(self, entry_id: str) -> None:
        self._entries = [entry for entry in self._entries if entry.id != entry_id]


class Outbox(_EntryList):
    """Outbox backed by a JSON-lines file: one ``{"id": …, "event": …}`` per line.

    ``append`` appends one line and fsyncs; ``remove`` rewrites the file to a temporary
    sibling and ``os.replace``-s it, so a crash leaves either the old or the new file,
    never a mix. The only damage a crash can do is a cut-short last line; it is skipped
    with a warning when the file is opened (and the file is rewritten clean, so the next
    append does not glue onto it). The file holds routing keys: it is created 0600.

    One process owns one outbox file; two writers would resend each other's events.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._entries = self._load()
        except OSError as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc

    def append(self, event: Mapping[str, Any]) -> OutboxEntry:
        entry = self._new_entry(event)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(_entry_line(entry))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise OutboxError(f"cannot append to outbox {self.path}: {exc}") from exc
        self._entries.append(entry)
        return entry

    def remove(self, entry_id: str) -> None:
        remaining = [entry for entry in self._entries if entry.id != entry_id]
        if len(remaining) != len(self._entries):
            self._rewrite(remaining)
            self._entries = remaining

    def _load(self) -> list[OutboxEntry]:
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
        entries: list[OutboxEntry] = []
        damaged = False
        for number, line in numbered:
            try:
                entries.append(_entry_from_line(line))
            except ValueError as exc:
                damaged = True
                where = "last line" if number == numbered[-1][0] else f"line {number}"
                log.warning(
                    "outbox %s: skipping unreadable %s (%s); most likely a write cut short by a crash",
                    self.path,
                    where,
                    exc,
                )
        if damaged or not raw.endswith(b"\n"):
            self._rewrite(entries)
        return entries

    def _rewrite(self, entries: Sequence[OutboxEntry]) -> None:
        try:
            atomic_write(self.path, b"".join(_entry_line(entry) for entry in entries))
        except OSError as exc:
            raise OutboxError(f"cannot rewrite outbox {self.path}: {exc}") from exc


def _entry_line(entry: OutboxEntry) -> bytes:
    record = {"id": entry.id, "event": entry.event}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _entry_from_line(line: bytes) -> OutboxEntry:
    record = json.loads(line)  # JSONDecodeError and UnicodeDecodeError are ValueErrors
    if not (
        isinstance(record, dict)
        and isinstance(record.get("id"), str)
        and isinstance(record.get("event"), dict)
    ):
        raise ValueError("not an outbox record")
    return OutboxEntry(id=record["id"], event=record["event"])


# ---------------------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------------------


class Outcome(StrEnum):
    """Delivery results, as counted in ``pagerduty_events_total{action,result}``."""

    DELIVERED = "delivered"  # 2xx: PagerDuty has the event
    REJECTED = "rejected"  # 400 (or another 4xx but 429): not retried, dropped from outbox
    RETRY = "retry"  # one failed attempt that will be retried (reported to on_result only)
    FAILED = "failed"  # attempts exhausted; the event stays in the outbox for the next flush
    DEDUPLICATED = "deduplicated"  # a trigger for an already open dedup_key, coalesced


@dataclass(frozen=True)
class DeliveryResult:
    """What became of one event. Carries no routing key and no payload."""

    outcome: Outcome
    action: str
    dedup_key: str | None
    attempts: int
    status: int | None = None  # last HTTP status; None for network errors or no attempt
    reason: str | None = None  # PagerDuty's message on rejection, last error on failure

    @property
    def delivered(self) -> bool:
        return self.outcome is Outcome.DELIVERED


class PagerDutyClient:
    """Sends events to the Events API v2 through an outbox, in order, at least once.

    ``enqueue`` stores an event and wakes ``run()``, the background loop; ``send`` stores
    an event and delivers everything queued up to and including it, returning its
    result; ``flush`` delivers what is queued now. Nothing overtakes an undelivered
    event, so a ``resolve`` can never reach PagerDuty before its ``trigger``.

    Retries: 429, 5xx, timeouts and connection errors are retried up to ``max_attempts``
    times with ``backoff_delay`` (a 429's ``Retry-After`` is honoured up to
    ``max_delay``); then the event stays pending and ``run()`` tries again after
    ``max_delay``. A 400 means the event itself is wrong: reported, never retried.

    Dedup: a ``trigger`` whose ``dedup_key`` is already open (triggered, not resolved)
    is coalesced: not stored, not sent, counted as ``deduplicated``. A leak storm of
    thousands of frames therefore pages once. Pending triggers found in the outbox at
    start-up count as open; pass ``open_dedup_keys`` for incidents known to be open from
    elsewhere (incident records, CR status).

    ``on_result(action, result)`` is called for every outcome, including each ``retry``;
    an exception in it is logged and never stops delivery.
    """

    def __init__(
        self,
        *,
        url: str = EVENTS_URL,
        outbox: OutboxStore | None = None,
        timeout: float = 10.0,
        max_attempts: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        on_result: Callable[[str, str], None] | None = None,
        open_dedup_keys: Iterable[str] = (),
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts!r}")
        if base_delay < 0 or max_delay < base_delay:
            raise ValueError(
                f"need 0 <= base_delay <= max_delay, got base_delay={base_delay!r}, max_delay={max_delay!r}"
            )
        self._url = url
        self._outbox: OutboxStore = outbox if outbox is not None else MemoryOutbox()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._on_result = on_result
        self._open_keys: set[str] = set(open_dedup_keys)
        for entry in self._outbox.pending():
            self._track_open(entry.event)
        self._lock = asyncio.Lock()  # one delivery at a time keeps the outbox order
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._waiters: dict[str, asyncio.Future[DeliveryResult]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._run_task: asyncio.Task[Any] | None = None

    @property
    def outbox(self) -> OutboxStore:
        return self._outbox

    @property
    def open_dedup_keys(self) -> frozenset[str]:
        """Keys triggered and not resolved: further triggers for them are coalesced."""
        return frozenset(self._open_keys)

    def enqueue(self, event: Mapping[str, Any]) -> bool:
        """Store ``event`` for ``run()``/``flush()``; False if it was coalesced.

        Raises ``InvalidEventError`` for a schema problem (a bug in the caller: build
        events with ``build_event``), ``OutboxError`` if it cannot be stored, and
        ``PagerDutyError`` after ``close()``.
        """
        return self._admit(event) is not None

    async def send(self, event: Mapping[str, Any]) -> DeliveryResult:
        """Store ``event`` and deliver the outbox up to and including it."""
        entry = self._admit(event)
        if entry is None:
            return DeliveryResult(
                Outcome.DEDUPLICATED, event["event_action"], event.get("dedup_key"), attempts=0
            )
        waiter: asyncio.Future[DeliveryResult] = asyncio.get_running_loop().create_future()
        self._waiters[entry.id] = waiter
        try:
            async with self._lock:
                if not waiter.done():  # run() may have delivered it while we waited
                    await self._drain(until=entry.id)
        finally:
            self._waiters.pop(entry.id, None)
        if waiter.done():
            return waiter.result()
        return DeliveryResult(
            Outcome.FAILED,
            entry.event["event_action"],
            entry.event.get("dedup_key"),
            attempts=0,
            reason="queued behind an undelivered event; kept in the outbox",
        )

    async def flush(self) -> list[DeliveryResult]:
        """Deliver the pending events in order; stops at the first one still failing.

        ``OutboxError`` means an event was delivered but could not be struck from the
        outbox; it will be sent again later, which the ``dedup_key`` makes harmless.
        """
        async with self._lock:
            return await self._drain(until=None)

    async def run(self) -> None:
        """Deliver enqueued events until ``close()`` (or cancellation)."""
        if self._run_task is not None:
            raise PagerDutyError("run() is already running for this client")
        self._run_task = asyncio.current_task()
        try:
            while not self._closing.is_set():
                self._wake.clear()
                try:
                    stuck = any(r.outcome is Outcome.FAILED for r in await self.flush())
                except OutboxError:
                    log.exception("PagerDuty outbox I/O failed; retrying in %ss", self._max_delay)
                    stuck = True
                if stuck:
                    await self._sleep_unless_closing(self._max_delay)
                elif not len(self._outbox):
                    await self._wake.wait()
        finally:
            self._run_task = None

    async def close(self) -> None:
        """Stop ``run()``, let an in-flight attempt finish, release the HTTP session.

        Undelivered events stay in the outbox (and, for ``Outbox``, in its file).
        """
        self._closing.set()
        self._wake.set()
        task = self._run_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait([task])
        async with self._lock:
            if self._session is not None:
                await self._session.close()
                self._session = None

    async def __aenter__(self) -> PagerDutyClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _admit(self, event: Mapping[str, Any]) -> OutboxEntry | None:
        problems = validate_event(event)
        if problems:
            raise InvalidEventError(problems)
        if self._closing.is_set():
            raise PagerDutyError("the PagerDuty client is closed; create a new one")
        action, key = event["event_action"], event.get("dedup_key")
        if action == "trigger" and key in self._open_keys:
            log.debug("coalesced trigger for open dedup_key %r", key)
            self._report(action, Outcome.DEDUPLICATED)
            return None
        entry = self._outbox.append(event)  # first: a key is open only once it is stored
        self._track_open(entry.event)
        self._wake.set()
        return entry

    def _track_open(self, event: Mapping[str, Any]) -> None:
        key = event.get("dedup_key")
        if not isinstance(key, str):
            return  # a trigger without a key always opens a new alert; nothing to coalesce
        if event.get("event_action") == "trigger":
            self._open_keys.add(key)
        elif event.get("event_action") == "resolve":
            self._open_keys.discard(key)

    async def _drain(self, *, until: str | None) -> list[DeliveryResult]:
        results: list[DeliveryResult] = []
        for entry in self._outbox.pending():
            if self._closing.is_set():
                break
            result = await self._deliver(entry)
            results.append(result)
            if result.outcome is not Outcome.FAILED:
                self._outbox.remove(entry.id)
                if result.outcome is Outcome.REJECTED and result.action == "trigger":
                    # Nothing was paged, so a later trigger for this key must not be dropped.
                    self._open_keys.discard(result.dedup_key or "")
            waiter = self._waiters.get(entry.id)
            if waiter is not None and not waiter.done():
                waiter.set_result(result)
            if result.outcome is Outcome.FAILED or entry.id == until:
                break  # FAILED: keep order; nothing may overtake an undelivered event
        return results

    async def _deliver(self, entry: OutboxEntry) -> DeliveryResult:
        action = entry.event["event_action"]
        key = entry.event.get("dedup_key")
        session = self._get_session()
        status: int | None = None
        reason: str | None = None
        attempt = 0
        while attempt < self._max_attempts:
            attempt += 1
            retry_after: float | None = None
            try:
                async with session.post(self._url, json=entry.event, timeout=self._timeout) as response:
                    status = response.status
                    body = await response.read()
                    retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                status, reason = None, _truncate(detail)
            else:
                if 200 <= status < 300:
                    log.info("PagerDuty accepted %s for %r", action, key)
                    self._report(action, Outcome.DELIVERED)
                    return DeliveryResult(Outcome.DELIVERED, action, key, attempt, status)
                reason = _describe_error(status, body)
                if status != 429 and status < 500:
                    log.error("PagerDuty rejected %s for %r: %s", action, key, reason)
                    self._report(action, Outcome.REJECTED)
                    return DeliveryResult(Outcome.REJECTED, action, key, attempt, status, reason)
            if attempt == self._max_attempts:
                break
            delay = backoff_delay(attempt, base_delay=self._base_delay, max_delay=self._max_delay)
            if retry_after is not None:
                delay = min(self._max_delay, max(delay, retry_after))
            log.warning(
                "PagerDuty %s for %r failed (%s); retry %d in %.2fs",
                action,
                key,
                reason,
                attempt,
                delay,
            )
            self._report(action, Outcome.RETRY)
            if await self._sleep_unless_closing(delay):
                break
        log.error(
            "PagerDuty %s for %r still undelivered after %d attempts (%s); kept in outbox",
            action,
            key,
            attempt,
            reason,
        )
        self._report(action, Outcome.FAILED)
        return DeliveryResult(Outcome.FAILED, action, key, attempt, status, reason)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"User-Agent": f"canarywatch/{__version__}"})
        return self._session

    async def _sleep_unless_closing(self, seconds: float) -> bool:
        """Sleep; True if ``close()`` cut the sleep short."""
        try:
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    def _report(self, action: str, outcome: Outcome) -> None:
        if self._on_result is None:
            return
        try:
            self._on_result(action, outcome.value)
        except Exception:
            # A metrics bug must never cost a page.
            log.exception("on_result hook failed for %s/%s", action, outcome.value)


def _retry_after_seconds(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        seconds = float(header)
    except ValueError:
        return None  # the HTTP-date form is not worth parsing for a capped hint
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _describe_error(status: int, body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        parts = [str(parsed.get(name)) for name in ("status", "message") if parsed.get(name)]
        errors = parsed.get("errors")
        if isinstance(errors, list):
            parts += [str(error) for error in errors]
        if parts:
            return _truncate(f"HTTP {status}: {'; '.join(parts)}")
    text = body.decode(errors="replace").strip()
    return _truncate(f"HTTP {status}: {text}" if text else f"HTTP {status}")


def _truncate(text: str) -> str:
    return text if len(text) <= _REASON_LIMIT else f"{text[: _REASON_LIMIT - 3]}..."
