"""PagerDuty Events API v2 events: build them and check them, purely (no I/O).

``build_event`` / ``validate_event`` produce and check the JSON object that ``POST
/v2/enqueue`` accepts. The local receiver (``incidents.receiver``) runs the same
``validate_event`` on every request, so sender and test oracle cannot drift apart.
What an incident's page says is decided once, in ``incidents.pages``.

Privacy: an event never carries pixels. Callers put frame *hashes*, sizes, times and
*links* to evidence in ``custom_details``/``links``; ``validate_event`` refuses binary
values and inline ``data:`` URIs anywhere in ``custom_details``, the builder has no
``images`` argument, and ``links``/``images`` must be http(s) URLs. A ``foreign`` frame
may show a stranger's home: it must not reach a pager, a phone or a log line.

Secrets: the routing key is a credential for the PagerDuty service; validation
messages never echo it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

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
    "InvalidEventError",
    "PagerDutyError",
    "build_event",
    "make_dedup_key",
    "placeholder_routing_key",
    "severity_for_verdict",
    "validate_event",
]

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


class PagerDutyError(Exception):
    """Base class for errors raised by the PagerDuty pipeline."""


class InvalidEventError(PagerDutyError, ValueError):
    """An event breaks the Events API v2 schema; each problem names its field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


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
    client: str | None = None,
    client_url: str | None = None,
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
    if client is not None:
        event["client"] = client
    if client_url is not None:
        event["client_url"] = client_url
    problems = validate_event(event)
    if problems:
        raise InvalidEventError(problems)
    copied: dict[str, Any] = json.loads(json.dumps(event))
    return copied


def placeholder_routing_key(routing_key: str, url: str) -> str | None:
    """Why ``routing_key`` must not be sent to ``url``, or None.

    Only PagerDuty's own endpoints are guarded: an example's key (a run of one character,
    like the ``0000...`` of a copied manifest) would raise a real critical alert in
    somebody's PagerDuty account. Real integration keys are random, so a run of 8 equal
    characters (about one key in 10 million) is taken for a placeholder. Local receivers
    (tests, the demo) accept any key.
    """
    host = (urlsplit(url).hostname or "").lower()
    if not (host == "pagerduty.com" or host.endswith(".pagerduty.com")):
        return None
    for index in range(len(routing_key) - 7):
        if len(set(routing_key[index : index + 8])) == 1:
            return (
                f"the routing key looks like a placeholder ({routing_key[index]!r} repeated): "
                "nothing was sent to PagerDuty; put your service's Events API v2 integration key "
                "in the Secret"
            )
    return None


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
