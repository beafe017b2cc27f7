"""PagerDuty Events v2 builders, schema validation, backoff and the outbox (no network)."""

from __future__ import annotations

import json
import logging
import random
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from canarywatch.incidents.pagerduty import (
    MAX_DEDUP_KEY_LENGTH,
    InvalidEventError,
    MemoryOutbox,
    Outbox,
    OutboxError,
    OutboxStore,
    build_event,
    make_dedup_key,
    severity_for_verdict,
    validate_event,
)
from canarywatch.retrying import backoff_delay

ROUTING_KEY = "R" * 32


def trigger(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "action": "trigger",
        "routing_key": ROUTING_KEY,
        "dedup_key": "canarywatch/relay/inc-1",
        "summary": "cross_tenant frame shown to tenant bravo",
        "source": "relay.example",
        "severity": "critical",
    }
    arguments.update(overrides)
    return build_event(**arguments)


# --- build_event / validate_event ------------------------------------------------------


def test_full_trigger_has_the_documented_shape() -> None:
    event = trigger(
        custom_details={"frame_sha256": "ab" * 32, "viewer": "bravo/hub-1"},
        links=[{"href": "https://evidence.example/inc-1", "text": "evidence"}],
        timestamp=datetime(2020, 1, 2, 8, 42, 58, tzinfo=UTC),
        component="snapshot-cache",
        group="relay",
        cls="cross_tenant",
    )
    assert event == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "canarywatch/relay/inc-1",
        "payload": {
            "summary": "cross_tenant frame shown to tenant bravo",
            "source": "relay.example",
            "severity": "critical",
            "timestamp": "2020-01-02T08:42:58+00:00",
            "component": "snapshot-cache",
            "group": "relay",
            "class": "cross_tenant",
            "custom_details": {"frame_sha256": "ab" * 32, "viewer": "bravo/hub-1"},
        },
        "links": [{"href": "https://evidence.example/inc-1", "text": "evidence"}],
    }
    assert validate_event(event) == []


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_acknowledge_and_resolve_carry_only_the_key(action: str) -> None:
    event = build_event(action=action, routing_key=ROUTING_KEY, dedup_key="k")
    assert event == {"routing_key": ROUTING_KEY, "event_action": action, "dedup_key": "k"}
    assert validate_event(event) == []


def test_built_event_does_not_follow_later_changes_to_its_inputs() -> None:
    details = {"frames": ["a"]}
    event = trigger(custom_details=details)
    details["frames"].append("b")
    assert event["payload"]["custom_details"] == {"frames": ["a"]}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"routing_key": "short"}, "routing_key"),
        ({"action": "page"}, "event_action"),
        ({"dedup_key": "k" * (MAX_DEDUP_KEY_LENGTH + 1)}, "dedup_key"),
        ({"dedup_key": ""}, "dedup_key"),
        ({"summary": "s" * 1025}, "payload.summary"),
        ({"summary": None}, "payload.summary"),
        ({"source": None}, "payload.source"),
        ({"severity": "fatal"}, "payload.severity"),
        ({"timestamp": "yesterday"}, "payload.timestamp"),
        ({"timestamp": datetime(2020, 1, 2, 8, 0, 0)}, "payload.timestamp"),  # naive
        ({"links": [{"text": "no href"}]}, "links[0].href"),
        ({"links": [{"href": "javascript:alert(1)"}]}, "links[0].href"),
        ({"custom_details": {"thumbnail": b"\xff\xd8\xff"}}, "payload.custom_details.thumbnail"),
        (
            {"custom_details": {"frames": [{"img": "data:image/jpeg;base64,/9j/4AAQ"}]}},
            "payload.custom_details.frames[0].img",
        ),
        ({"links": [{"href": "data:image/png;base64,iVBORw0KGgo="}]}, "links[0].href"),
        ({"custom_details": {"when": datetime.now(UTC)}}, "payload.custom_details"),
    ],
)
def test_build_event_names_the_bad_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEventError) as raised:
        trigger(**overrides)
    assert any(problem.startswith(f"{field}:") for problem in raised.value.problems), raised.value
    assert isinstance(raised.value, ValueError)


def test_payload_fields_on_resolve_are_refused_not_dropped() -> None:
    with pytest.raises(InvalidEventError, match=r"payload\.summary: only trigger events"):
        build_event(action="resolve", routing_key=ROUTING_KEY, dedup_key="k", summary="fixed")


def test_routing_key_is_never_echoed_in_problems() -> None:
    secret = "s3cr3t-routing-key-of-31-chars!"
    problems = validate_event({"routing_key": secret, "event_action": "resolve"})
    assert problems
    assert all(secret not in problem for problem in problems)


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ([], "event"),
        ({"routing_key": ROUTING_KEY, "event_action": "resolve"}, "dedup_key"),
        ({"routing_key": ROUTING_KEY, "event_action": "trigger"}, "payload"),
        (
            {"routing_key": ROUTING_KEY, "event_action": "trigger", "event_type": "x"},
            "event_type",
        ),
        (
            {
                "routing_key": ROUTING_KEY,
                "event_action": "trigger",
                "payload": {"summary": "s", "source": "h", "severity": "info", "sevirity": "x"},
            },
            "payload.sevirity",
        ),
        (
            {
                "routing_key": ROUTING_KEY,
                "event_action": "trigger",
                "payload": {"summary": "s", "source": "h", "severity": "info"},
                "images": [{"src": "http://plain-http.example/a.png"}],
            },
            "images[0].src",
        ),
        (
            {
                "routing_key": ROUTING_KEY,
                "event_action": "trigger",
                "payload": {
                    "summary": "s",
                    "source": "h",
                    "severity": "info",
                    "custom_details": {"blob": "x" * (512 * 1024)},
                },
            },
            "event",
        ),
    ],
)
def test_validate_event_reports_raw_schema_problems(event: object, field: str) -> None:
    problems = validate_event(event)
    assert any(problem.startswith(f"{field}:") for problem in problems), problems


def test_validate_event_accepts_the_documented_example() -> None:
    # The example request of PagerDuty's Events v2 reference, including https images.
    example = {
        "payload": {
            "summary": "DISK at 99% on machine prod-datapipe03.example.com",
            "timestamp": "2015-07-17T08:42:58.315+0000",
            "severity": "critical",
            "source": "prod-datapipe03.example.com",
            "component": "mysql",
            "group": "prod-datapipe",
            "class": "disk",
            "custom_details": {"free space": "1%", "ping time": "1500ms", "load avg": 0.75},
        },
        "routing_key": "e93facc04764012d7bfb002500d5d1a6",
        "dedup_key": "srv01/mysql",
        "event_action": "trigger",
        "client": "Sample Monitoring Service",
        "client_url": "https://monitoring.service.com",
        "links": [{"href": "http://pagerduty.example.com", "text": "An example link."}],
        "images": [{"src": "https://chart.example/c.png", "href": "https://google.com", "alt": "x"}],
    }
    assert validate_event(example) == []


@pytest.mark.parametrize(
    ("verdict", "severity"),
    [
        ("cross_tenant", "critical"),
        ("foreign", "critical"),
        ("misrouted", "error"),
        ("forged", "error"),
        ("stale", "warning"),
        ("degraded", "info"),
    ],
)
def test_severity_follows_the_verdict(verdict: str, severity: str) -> None:
    assert severity_for_verdict(verdict) == severity


def test_ok_frames_never_page() -> None:
    with pytest.raises(InvalidEventError, match="verdict: 'ok' does not page"):
        severity_for_verdict("ok")


def test_dedup_key_is_stable_and_bounded() -> None:
    assert make_dedup_key(integration="nest", incident="i-1") == "canarywatch/nest/i-1"
    assert make_dedup_key(integration="nest", incident="i-1") != make_dedup_key(
        integration="nest", incident="i-2"
    )
    long_a = make_dedup_key(integration="n" * 300, incident="a")
    long_b = make_dedup_key(integration="n" * 300, incident="b")
    assert len(long_a) == MAX_DEDUP_KEY_LENGTH
    assert long_a != long_b
    assert long_a == make_dedup_key(integration="n" * 300, incident="a")
    with pytest.raises(InvalidEventError, match="incident:"):
        make_dedup_key(integration="nest", incident="")


# --- backoff ---------------------------------------------------------------------------


def test_backoff_grows_then_stays_under_the_cap() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, base_delay=1.0, max_delay=30.0, rng=rng) for n in range(1, 12)]
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(30.0, 2.0 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert backoff_delay(10_000, base_delay=1.0, max_delay=30.0) <= 30.0


# --- outbox ----------------------------------------------------------------------------

OutboxFactory = Callable[[], OutboxStore]


@pytest.fixture(params=["file", "memory"])
def make_outbox(request: pytest.FixtureRequest, tmp_path: Path) -> OutboxFactory:
    if request.param == "file":
        return lambda: Outbox(tmp_path / "outbox.jsonl")
    return MemoryOutbox


def test_outbox_is_fifo_and_remove_is_idempotent(make_outbox: OutboxFactory) -> None:
    outbox = make_outbox()
    entries = [outbox.append(trigger(dedup_key=f"k{n}")) for n in range(3)]
    assert [e.event["dedup_key"] for e in outbox.pending()] == ["k0", "k1", "k2"]
    outbox.remove(entries[1].id)
    outbox.remove(entries[1].id)
    outbox.remove("no-such-id")
    assert [e.id for e in outbox.pending()] == [entries[0].id, entries[2].id]
    assert len(outbox) == 2


def test_outbox_keeps_a_copy(make_outbox: OutboxFactory) -> None:
    outbox = make_outbox()
    event = trigger()
    outbox.append(event)
    event["payload"]["summary"] = "changed afterwards"
    assert outbox.pending()[0].event["payload"]["summary"] != "changed afterwards"


def test_outbox_refuses_what_it_could_not_persist(make_outbox: OutboxFactory) -> None:
    with pytest.raises(InvalidEventError, match="event: not JSON-serializable"):
        make_outbox().append({"event_action": "trigger", "when": datetime.now(UTC)})


def test_file_outbox_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.jsonl"
    first = Outbox(path)
    kept = first.append(trigger(dedup_key="kept"))
    gone = first.append(trigger(dedup_key="gone"))
    first.remove(gone.id)

    reopened = Outbox(path)
    assert reopened.pending() == [kept]
    # The file holds routing keys: only its owner may read it.
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(path.parent.glob(".*.tmp"))


def test_corrupt_trailing_line_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.jsonl"
    Outbox(path).append(trigger(dedup_key="whole"))
    with path.open("ab") as handle:
        handle.write(b'{"id": "cut-short", "event": {"routing_')  # crash mid-append

    with caplog.at_level(logging.WARNING):
        reopened = Outbox(path)
    assert [e.event["dedup_key"] for e in reopened.pending()] == ["whole"]
    assert "skipping unreadable last line" in caplog.text

    # The next append must not glue onto the cut-short line.
    reopened.append(trigger(dedup_key="after-crash"))
    assert [e.event["dedup_key"] for e in Outbox(path).pending()] == ["whole", "after-crash"]


def test_corrupt_line_in_the_middle_costs_only_that_line(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    good = [json.dumps({"id": f"i{n}", "event": {"n": n}}) for n in range(2)]
    path.write_text(f"{good[0]}\nnot json at all\n[1, 2]\n{good[1]}\n", encoding="utf-8")
    assert [e.id for e in Outbox(path).pending()] == ["i0", "i1"]


def test_unreadable_outbox_location_is_an_outbox_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(OutboxError) as raised:
        Outbox(blocker / "outbox.jsonl")
    assert isinstance(raised.value.__cause__, OSError)
