"""PagerDuty client against the local Events v2 receiver, over loopback.

Delays are tiny (base 1 ms, cap 10 ms) so retries are exercised without slowing the
suite; nothing here asserts on wall-clock time.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from canarywatch.controller import paging
from canarywatch.controller.runtime import Runtime
from canarywatch.controller.settings import OperatorSettings
from canarywatch.incidents.pagerduty import (
    InvalidEventError,
    Outbox,
    Outcome,
    PagerDutyClient,
    PagerDutyError,
    build_event,
)
from canarywatch.incidents.receiver import EventsReceiver, serve
from canarywatch.metrics import Metrics
from canarywatch.serving import ServedApp

ROUTING_KEY = "0123456789abcdef0123456789abcdef"
KEY = "canarywatch/reference-relay/inc-1"

ClientFactory = Callable[..., PagerDutyClient]


def event(action: str, dedup_key: str = KEY) -> dict[str, Any]:
    if action != "trigger":
        return build_event(action=action, routing_key=ROUTING_KEY, dedup_key=dedup_key)
    return build_event(
        action="trigger",
        routing_key=ROUTING_KEY,
        dedup_key=dedup_key,
        summary="cross_tenant: tenant bravo was shown camera alpha/cam-1",
        source="reference-relay",
        severity="critical",
        custom_details={"frame_sha256": "5e" * 32, "viewer": "bravo/hub-1"},
        links=[{"href": "https://canarywatch.example/incidents/inc-1", "text": "evidence"}],
    )


@pytest.fixture
async def receiver() -> AsyncIterator[EventsReceiver]:
    async with EventsReceiver() as running:
        yield running


@pytest.fixture
def results() -> Counter[tuple[str, str]]:
    return Counter()


@pytest.fixture
async def make_client(
    receiver: EventsReceiver, results: Counter[tuple[str, str]]
) -> AsyncIterator[ClientFactory]:
    made: list[PagerDutyClient] = []

    def factory(**overrides: Any) -> PagerDutyClient:
        options: dict[str, Any] = {
            "url": receiver.url,
            "timeout": 2.0,
            "max_attempts": 4,
            "base_delay": 0.001,
            "max_delay": 0.01,
            "on_result": lambda action, result: results.update([(action, result)]),
        }
        options.update(overrides)
        client = PagerDutyClient(**options)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.close()


async def test_trigger_acknowledge_resolve_are_accepted(
    receiver: EventsReceiver, make_client: ClientFactory
) -> None:
    client = make_client()
    for action in ("trigger", "acknowledge", "resolve"):
        result = await client.send(event(action))
        assert result.outcome is Outcome.DELIVERED
        assert (result.status, result.attempts, result.dedup_key) == (202, 1, KEY)

    assert [e["event_action"] for e in receiver.events] == ["trigger", "acknowledge", "resolve"]
    assert [(a.dedup_key, a.status) for a in receiver.alerts] == [(KEY, "resolved")]
    assert len(client.outbox) == 0


async def test_receiver_rejects_invalid_events_naming_the_field(receiver: EventsReceiver) -> None:
    bad = event("trigger")
    bad["payload"]["severity"] = "fatal"
    del bad["payload"]["source"]
    async with aiohttp.ClientSession() as session:
        async with session.post(receiver.url, json=bad) as response:
            assert response.status == 400
            body = await response.json()
        async with session.post(receiver.url, data=b"{not json") as response:
            assert response.status == 400
            garbled = await response.json()

    assert body["status"] == "invalid event"
    assert any(error.startswith("payload.severity:") for error in body["errors"])
    assert any(error.startswith("payload.source:") for error in body["errors"])
    assert garbled["errors"] == ["JSON parse error"]
    assert receiver.events == []
    assert [r.answer for r in receiver.requests] == [400, 400]


async def test_client_refuses_an_invalid_event_without_sending_it(
    receiver: EventsReceiver, make_client: ClientFactory
) -> None:
    client = make_client()
    bad = event("trigger")
    bad["payload"]["summary"] = "x" * 1025
    with pytest.raises(InvalidEventError, match=r"payload\.summary"):
        await client.send(bad)
    assert receiver.requests == []
    assert len(client.outbox) == 0


async def test_429_then_500_then_accepted_is_delivered_exactly_once(
    receiver: EventsReceiver, make_client: ClientFactory, results: Counter[tuple[str, str]]
) -> None:
    receiver.script(429, 500)
    result = await make_client().send(event("trigger"))

    assert result.outcome is Outcome.DELIVERED
    assert result.attempts == 3
    assert [r.answer for r in receiver.requests] == [429, 500, 202]
    assert len(receiver.events) == 1
    assert results == {("trigger", "retry"): 2, ("trigger", "delivered"): 1}


async def test_400_is_reported_and_not_retried(
    receiver: EventsReceiver, make_client: ClientFactory, results: Counter[tuple[str, str]]
) -> None:
    client = make_client()
    receiver.script(400)
    result = await client.send(event("trigger"))

    assert result.outcome is Outcome.REJECTED
    assert result.status == 400
    assert result.reason is not None and "Event object is invalid" in result.reason
    assert len(receiver.requests) == 1
    assert len(client.outbox) == 0
    assert results == {("trigger", "rejected"): 1}
    # Nothing was paged, so the next trigger for the incident must still go out.
    assert (await client.send(event("trigger"))).outcome is Outcome.DELIVERED


async def test_timeouts_are_retried(receiver: EventsReceiver, make_client: ClientFactory) -> None:
    receiver.script("timeout", "timeout")
    result = await make_client(timeout=0.2).send(event("trigger"))

    assert result.outcome is Outcome.DELIVERED
    assert result.attempts == 3
    assert [r.answer for r in receiver.requests] == ["timeout", "timeout", 202]
    assert len(receiver.events) == 1


async def test_undelivered_events_wait_in_order_and_a_restart_sends_them_once(
    receiver: EventsReceiver, make_client: ClientFactory, tmp_path: Path
) -> None:
    path = tmp_path / "pagerduty-outbox.jsonl"
    first = make_client(outbox=Outbox(path), max_attempts=3)
    receiver.script(500, 500, 500)
    first.enqueue(event("trigger"))
    first.enqueue(event("acknowledge"))
    results = await first.flush()

    # The acknowledge was not attempted: nothing overtakes an undelivered trigger.
    assert [(r.action, r.outcome, r.status) for r in results] == [("trigger", Outcome.FAILED, 500)]
    assert len(receiver.requests) == 3
    await first.close()  # the "crash": the process goes away with two pending events

    second = make_client(outbox=Outbox(path))
    delivered = await second.flush()
    assert [(r.action, r.outcome) for r in delivered] == [
        ("trigger", Outcome.DELIVERED),
        ("acknowledge", Outcome.DELIVERED),
    ]
    assert await second.flush() == []
    assert [e["event_action"] for e in receiver.events] == ["trigger", "acknowledge"]
    assert len(Outbox(path)) == 0


async def test_network_errors_are_retried_then_kept(
    make_client: ClientFactory, results: Counter[tuple[str, str]], tmp_path: Path
) -> None:
    async with EventsReceiver() as gone:
        dead_url = gone.url  # nothing listens here once the block ends
    path = tmp_path / "outbox.jsonl"
    result = await make_client(url=dead_url, outbox=Outbox(path), max_attempts=3).send(event("trigger"))

    assert result.outcome is Outcome.FAILED
    assert result.status is None
    assert result.reason is not None and "Connect" in result.reason
    assert results == {("trigger", "retry"): 2, ("trigger", "failed"): 1}
    assert [e.event["event_action"] for e in Outbox(path).pending()] == ["trigger"]


async def test_a_leak_storm_pages_once(
    receiver: EventsReceiver, make_client: ClientFactory, results: Counter[tuple[str, str]]
) -> None:
    client = make_client()
    storm = await asyncio.gather(*(client.send(event("trigger")) for _ in range(50)))

    assert Counter(r.outcome for r in storm) == {Outcome.DELIVERED: 1, Outcome.DEDUPLICATED: 49}
    assert [e["event_action"] for e in receiver.events] == ["trigger"]
    assert len(receiver.alerts) == 1
    assert results[("trigger", "deduplicated")] == 49

    # After a resolve the same incident key may page again: that is a new leak.
    await client.send(event("resolve"))
    assert (await client.send(event("trigger"))).outcome is Outcome.DELIVERED
    assert [a.status for a in receiver.alerts] == ["resolved", "triggered"]


async def test_a_restart_mid_storm_does_not_page_twice(
    receiver: EventsReceiver, make_client: ClientFactory, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.jsonl"
    receiver.script(503, 503)
    first = make_client(outbox=Outbox(path), max_attempts=2)
    assert (await first.send(event("trigger"))).outcome is Outcome.FAILED
    await first.close()

    second = make_client(outbox=Outbox(path))
    assert KEY in second.open_dedup_keys
    assert second.enqueue(event("trigger")) is False  # the storm goes on after the restart
    await second.flush()
    assert [e["event_action"] for e in receiver.events] == ["trigger"]


async def test_background_loop_delivers_in_order_through_an_outage(
    receiver: EventsReceiver, make_client: ClientFactory
) -> None:
    client = make_client(max_attempts=2)
    receiver.script(502, 502, 502)  # the first round gives up; the loop tries again
    runner = asyncio.create_task(client.run())
    for action in ("trigger", "acknowledge", "resolve"):
        assert client.enqueue(event(action))

    delivered = await receiver.wait_for_events(3)
    assert [e["event_action"] for e in delivered] == ["trigger", "acknowledge", "resolve"]
    await client.close()
    assert runner.done()
    assert len(client.outbox) == 0


async def test_close_stops_the_loop_and_keeps_what_was_not_sent(
    receiver: EventsReceiver, make_client: ClientFactory, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.jsonl"
    receiver.script(*[500] * 100)
    client = make_client(outbox=Outbox(path), max_delay=0.05)
    runner = asyncio.create_task(client.run())
    client.enqueue(event("trigger"))
    while not receiver.requests:
        await asyncio.sleep(0.001)
    await client.close()

    assert runner.done()
    assert len(Outbox(path)) == 1
    with pytest.raises(PagerDutyError, match="closed"):
        client.enqueue(event("resolve"))


async def test_a_failing_metrics_hook_does_not_cost_the_page(
    receiver: EventsReceiver, make_client: ClientFactory
) -> None:
    def broken(action: str, result: str) -> None:
        raise RuntimeError("metrics registry exploded")

    result = await make_client(on_result=broken).send(event("trigger"))
    assert result.delivered
    assert len(receiver.events) == 1


async def test_receiver_records_accepted_events_without_the_routing_key(
    tmp_path: Path, make_client: ClientFactory
) -> None:
    record = tmp_path / "pages.jsonl"
    async with EventsReceiver(record_path=record) as recording:
        await make_client(url=recording.url).send(event("trigger"))

    lines = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    assert [line["event"]["dedup_key"] for line in lines] == [KEY]
    assert lines[0]["event"]["routing_key"] == "****cdef"
    assert ROUTING_KEY not in record.read_text(encoding="utf-8")


async def test_the_receiver_command_logs_each_page_without_its_routing_key() -> None:
    """`canarywatch pd-receiver` is the demo's PagerDuty: its log is where pages are read."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "canarywatch.cli",
        "pd-receiver",
        "--host=127.0.0.1",
        f"--port={port}",
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        started = await asyncio.wait_for(process.stderr.readline(), timeout=30)
        assert b"receiver" in started and str(port).encode() in started
        async with PagerDutyClient(url=f"http://127.0.0.1:{port}/v2/enqueue") as client:
            assert (await client.send(event("trigger"))).delivered
        lines = []
        while not any("accepted" in line for line in lines) and len(lines) < 5:
            lines.append((await asyncio.wait_for(process.stderr.readline(), timeout=10)).decode())
        page = next(line for line in lines if "accepted" in line)
        assert "accepted trigger" in page and KEY in page
        assert ROUTING_KEY not in "".join(lines)
    finally:
        process.terminate()
        await process.wait()


async def test_serve_runs_a_receiver_until_cancelled() -> None:
    ready: asyncio.Future[EventsReceiver] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve(on_ready=ready.set_result))
    url = (await asyncio.wait_for(ready, timeout=5)).url
    async with PagerDutyClient(url=url) as client:
        assert (await client.send(event("trigger"))).delivered
    server.cancel()
    await asyncio.wait([server])

    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.post(url, json=event("resolve"))


async def test_the_operator_pages_through_the_same_client_and_honours_retry_after() -> None:
    # Fails on the old operator: it wrapped single-attempt clients in a loop of its own,
    # which never read a 429's Retry-After (it resent after ~0.05 s here).
    arrived: list[float] = []
    answers = [429]

    async def enqueue(request: web.Request) -> web.Response:
        arrived.append(time.monotonic())
        if answers:
            return web.json_response(
                {"status": "throttled"}, status=answers.pop(0), headers={"Retry-After": "1"}
            )
        return web.json_response({"status": "success", "dedup_key": KEY}, status=202)

    app = web.Application()
    app.router.add_post("/v2/enqueue", enqueue)
    async with await ServedApp.start(app, "127.0.0.1", 0) as served:
        metrics = Metrics()
        settings = OperatorSettings(leader_election=False, pagerduty_retry_seconds=0.05)
        rt = Runtime(settings=settings, kube=cast(Any, None), metrics=metrics)
        result = await paging.deliver(rt, event("trigger"), f"{served.base_url}/v2/enqueue")
    assert result.delivered and result.attempts == 2
    assert arrived[1] - arrived[0] >= 0.95
    counted = {
        outcome: metrics.sample(
            "canarywatch_pagerduty_events_total", {"action": "trigger", "result": outcome}
        )
        for outcome in ("retry", "delivered")
    }
    assert counted == {"retry": 1, "delivered": 1}


@pytest.mark.parametrize(
    "url", ["https://events.pagerduty.com/v2/enqueue", "https://events.eu.pagerduty.com/v2/enqueue"]
)
async def test_a_placeholder_routing_key_is_never_sent_to_pagerduty(url: str) -> None:
    """The example Secret's key (a run of zeros) would raise a real critical alert in
    somebody's PagerDuty: refused before any connection is made, with a reason to act on."""
    placeholder = build_event(
        action="trigger",
        routing_key="PLACEHOLDER000000000000000000000",
        dedup_key=KEY,
        summary="cross_tenant: tenant bravo was shown camera alpha/cam-1",
        source="reference-relay",
        severity="critical",
    )
    async with PagerDutyClient(url=url, timeout=1.0, max_attempts=1, base_delay=0.001) as client:
        result = await client.send(placeholder)
    assert (result.outcome, result.attempts) == (Outcome.REJECTED, 0)
    assert result.reason is not None and "placeholder" in result.reason and "Secret" in result.reason
    assert "PLACEHOLDER" not in result.reason  # the key itself is never echoed


async def test_a_local_receiver_takes_any_key(receiver: EventsReceiver, make_client: ClientFactory) -> None:
    example = {**event("trigger"), "routing_key": "PLACEHOLDER000000000000000000000"}
    assert (await make_client().send(example)).outcome is Outcome.DELIVERED
    assert len(receiver.events) == 1
