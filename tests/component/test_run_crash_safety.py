"""`canarywatch run` as a user meets it: a real subprocess against an integration that
leaks, killed with SIGKILL at chosen moments and started again on the same ``--out``.
Nothing a run recorded is lost, nothing it intended is left undone, a second run does
not page twice for the same leak, and the way out is bounded. `canarywatch resume` brings
a switched-off integration back, resolves its incident, and the next leak pages again.

Each test prints its figures (``figure:`` lines, see the README's reliability section).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from leaky_integration import LeakyIntegration, RunProcess, leaky_integration, run_config

from canarywatch.incidents.events import make_dedup_key
from canarywatch.incidents.receiver import EventsReceiver
from canarywatch.markers import Keyring

# Generous: a liveness bound on a loaded machine, not a timing assertion.
EXIT_BOUND = 40.0


@pytest.fixture
async def integration() -> AsyncIterator[LeakyIntegration]:
    async with leaky_integration() as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[EventsReceiver]:
    async with EventsReceiver(hang_seconds=300) as running:
        yield running


@pytest.fixture
async def start_run(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[RunProcess] = []

    keyring = tmp_path / "keyring.json"  # one keyring for every run, as a user keeps one
    keyring.write_text(Keyring.generate(["acme-7", "bravo-2"]).to_json())

    async def start(
        config: dict[str, Any], *, duration: float = 0, out: str = "out", command: tuple[str, ...] = ()
    ) -> RunProcess:
        config["probe"]["keyring"] = str(keyring)
        run = await RunProcess(config, tmp_path / out, duration=duration).start(*command)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.process is not None and run.process.returncode is None:
            run.kill9()
            await run.process.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def _triggers(receiver: EventsReceiver) -> list[dict[str, Any]]:
    return [e for e in receiver.events if e["event_action"] == "trigger"]


async def _first_run(
    integration: LeakyIntegration, receiver: EventsReceiver, start_run: Callable[..., Any], **policy: Any
) -> tuple[dict[str, Any], RunProcess, dict[str, Any]]:
    """A run that catches the leak and ends cleanly: its config, process and incident."""
    config = run_config(integration.url, receiver.url)
    config["integration"]["policy"].update(policy)
    first = await start_run(config, duration=8)
    assert await first.wait(EXIT_BOUND) == 0, first.stderr
    [incident] = first.incidents()
    assert incident["paged_at"]
    return config, first, incident


async def test_a_rerun_on_the_same_out_keeps_the_incident_history(
    integration: LeakyIntegration, receiver: EventsReceiver, start_run: Callable[..., Any]
) -> None:
    config, first, incident = await _first_run(integration, receiver, start_run)
    assert incident["shutdown"]["done"]
    # a clean exit leaves one line per incident
    assert len((first.out / "incidents.jsonl").read_text().splitlines()) == 1

    integration.leaking, integration.off = False, False  # fixed and switched back on by hand
    second = await start_run(config, duration=3)
    assert await second.wait(EXIT_BOUND) == 0, second.stderr
    print(f"figure: records after a clean rerun: {len(second.incidents())} of 1")
    assert [r["id"] for r in second.incidents()] == [incident["id"]]
    assert second.incidents()[0]["shutdown"]["done"] and len(_triggers(receiver)) == 1


async def test_killed_mid_response_the_next_run_finishes_it_without_a_second_incident_or_page(
    integration: LeakyIntegration, receiver: EventsReceiver, start_run: Callable[..., Any]
) -> None:
    config = run_config(integration.url, receiver.url)
    integration.script_kill("hang")  # the kill webhook hangs: the kill switch is left Engaging
    receiver.script("timeout")  # and so does the page
    first = await start_run(config, duration=60)
    await first.wait_for_line("INCIDENT ")
    await _until(lambda: bool(integration.kill_calls and receiver.requests))
    [recorded] = first.incidents()
    assert recorded["intent"] == {"page": True, "kill": True}  # written with the incident
    first.kill9()
    await first.process.wait()
    switch = json.loads((first.out / "killswitch.json").read_text())["record"]
    assert switch["state"] == "Engaging"
    integration.release()  # the hanging call returns; the integration keeps leaking meanwhile
    integration.off = False

    second = await start_run(config, duration=8)
    await second.wait_for_line("SWITCHED OFF")
    code = await second.wait(EXIT_BOUND)
    incidents = second.incidents()
    print(
        f"figure: after kill -9 mid-response: incidents {len(incidents)}, pages {len(receiver.alerts)}, "
        f"kill calls {len(integration.kill_calls)}, state {second.summary()['state']}"
    )
    assert code == 0, second.stderr
    assert [r["id"] for r in incidents] == [recorded["id"]]  # the same leak, the same incident
    [incident] = incidents
    assert incident["shutdown"]["done"] and incident["paged_at"]
    dedup_key = make_dedup_key(integration="leaky", incident=recorded["id"])
    assert {t["dedup_key"] for t in _triggers(receiver)} == {dedup_key}
    assert len(receiver.alerts) == 1  # at least once, folded into one alert by its dedup_key
    assert len(integration.kill_calls) == 2 and integration.off
    assert second.summary()["state"] == "Suspended"
    state = json.loads((second.out / "killswitch.json").read_text())["record"]
    assert (state["state"], state["incident"]) == ("Engaged", recorded["id"])


async def test_an_incident_recorded_just_before_a_crash_is_paged_and_switched_off_on_restart(
    integration: LeakyIntegration, receiver: EventsReceiver, start_run: Callable[..., Any], tmp_path: Path
) -> None:
    # The state a SIGKILL leaves right after the incident's line: no outbox entry, no
    # kill-switch state. The leak stopped meanwhile, so only the record can finish it.
    config = run_config(integration.url, receiver.url)
    integration.script_kill("hang")
    receiver.script("timeout")
    first = await start_run(config, duration=60)
    await first.wait_for_line("INCIDENT ")
    await _until(lambda: bool(integration.kill_calls and receiver.requests))  # scripts consumed
    first.kill9()
    await first.process.wait()
    line = (first.out / "incidents.jsonl").read_text().splitlines()[0]
    for leftover in ("killswitch.json", "pagerduty-outbox.jsonl"):
        (first.out / leftover).unlink(missing_ok=True)
    (first.out / "incidents.jsonl").write_text(line + "\n")
    integration.release()
    integration.leaking, integration.off = False, False
    integration.kill_calls.clear()
    receiver.requests.clear()
    receiver.events.clear()
    receiver.alerts.clear()

    second = await start_run(config, duration=4)
    code = await second.wait(EXIT_BOUND)
    record = json.loads(line)
    print(
        f"figure: crash right after the incident line: pages {len(_triggers(receiver))}, "
        f"kill calls {len(integration.kill_calls)}"
    )
    assert code == 0, second.stderr
    assert [t["dedup_key"] for t in _triggers(receiver)] == [
        make_dedup_key(integration="leaky", incident=record["id"])
    ]
    assert len(integration.kill_calls) == 1 and integration.off
    [incident] = second.incidents()
    assert incident["paged_at"] and incident["shutdown"]["done"]


async def test_a_failing_kill_switch_is_retried_until_it_holds(
    integration: LeakyIntegration, receiver: EventsReceiver, start_run: Callable[..., Any]
) -> None:
    integration.script_kill(500, 500, 500)  # the webhook fails for a while, then works
    run = await start_run(run_config(integration.url, receiver.url), duration=15)
    await run.wait_for_line("SWITCHED OFF", timeout=30)
    leaked_after_first_failure = integration.leaked_served
    code = await run.wait(EXIT_BOUND)
    print(
        f"figure: webhook 500 x3 then 200: kill calls {len(integration.kill_calls)}, "
        f"state {run.summary()['state']}, frames leaked in all {leaked_after_first_failure}"
    )
    assert code == 0, run.stderr
    assert len(integration.kill_calls) == 4 and integration.off
    assert run.summary()["state"] == "Suspended"


async def test_a_kill_that_does_not_hold_is_run_again_and_counted(
    integration: LeakyIntegration, receiver: EventsReceiver, start_run: Callable[..., Any]
) -> None:
    integration.kill_works = False  # answers 200, keeps serving (a GitOps revert)
    port = _free_port()
    run = await start_run(run_config(integration.url, receiver.url, metrics_port=port), duration=16)
    await run.wait_for_line("SWITCHED OFF")
    await run.wait_for_line("LEAK WHILE SWITCHED OFF", timeout=30)
    await run.wait_for_line("re-asserted", timeout=30)
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as answer:
        text = await answer.text()
    [sample] = [
        line
        for line in text.splitlines()
        if line.startswith("canarywatch_leaked_frames_while_suspended_total{")
    ]
    leaked = float(sample.rsplit(" ", 1)[1])
    code = await run.wait(EXIT_BOUND)
    calls = len(integration.kill_calls)
    print(f"figure: kill not holding: kill calls {calls}, leaked frames counted {leaked:g}")
    assert code == 0, run.stderr
    assert 'integration="leaky"' in sample and leaked >= 1
    assert len(integration.kill_calls) >= 2
    assert len(run.incidents()) == 1 and len(_triggers(receiver)) == 1  # one leak, one page


async def test_exit_is_bounded_with_a_hanging_pagerduty_and_results_are_written(
    integration: LeakyIntegration, receiver: EventsReceiver, start_run: Callable[..., Any]
) -> None:
    receiver.script(*["timeout"] * 20)
    run = await start_run(run_config(integration.url, receiver.url), duration=6)
    code = await run.wait(120)
    print(f"figure: hanging PagerDuty, --duration 6: exited after {run.exited_after:.1f} s with code {code}")
    assert run.exited_after is not None and run.exited_after < EXIT_BOUND
    assert code == 1 and "unfinished: page of" in run.stderr  # the README's exit code
    [incident] = run.incidents()
    assert incident["shutdown"]["done"] and incident["paged_at"] is None
    outbox = [json.loads(x) for x in (run.out / "pagerduty-outbox.jsonl").read_text().splitlines()]
    assert [e["event"]["dedup_key"] for e in outbox] == [
        make_dedup_key(integration="leaky", incident=incident["id"])
    ]
    assert run.summary()["unfinished"]


async def test_exit_is_bounded_while_the_integration_holds_a_camera_stream_open(
    integration: LeakyIntegration, receiver: EventsReceiver, start_run: Callable[..., Any]
) -> None:
    integration.leaking = False
    port = _free_port()
    run = await start_run(run_config(integration.url, receiver.url, serve_port=port), duration=4)
    url = f"http://127.0.0.1:{port}/cameras/acme-7/0/stream.mjpg"
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                response = await session.get(url)
                break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the camera server never came up")
        async with response:
            assert response.status == 200
            await response.content.read(1000)  # the pull is open and streaming
            code = await run.wait(120)
    print(f"figure: MJPEG pull held open, --duration 4: exited after {run.exited_after:.1f} s")
    assert run.exited_after is not None and run.exited_after < EXIT_BOUND
    assert code == 0, run.stderr


def _resolves(receiver: EventsReceiver) -> list[dict[str, Any]]:
    return [e for e in receiver.events if e["event_action"] == "resolve"]


def _switch_state(out: Path) -> str:
    return str(json.loads((out / "killswitch.json").read_text())["record"]["state"])


async def test_resume_switches_back_on_resolves_the_page_and_the_next_leak_pages_again(
    integration: LeakyIntegration, receiver: EventsReceiver, start_run: Callable[..., Any]
) -> None:
    config, _, incident = await _first_run(integration, receiver, start_run)
    assert integration.off and incident["shutdown"]["done"]
    dedup_key = make_dedup_key(integration="leaky", incident=incident["id"])

    # a stale id (from last time, or a typo) is refused and changes nothing
    stale = await start_run(config, command=("resume", "--incident", "cross-tenant-old"))
    assert await stale.wait(EXIT_BOUND) == 2
    assert f"holds leaky off for incident {incident['id']}" in stale.stderr, stale.stderr
    assert integration.off and not integration.resume_calls and not _resolves(receiver)

    resume = await start_run(config, command=("resume", "--incident", incident["id"]))
    assert await resume.wait(EXIT_BOUND) == 0, resume.stderr
    [resolved] = resume.incidents()
    assert not integration.off and len(integration.resume_calls) == 1
    assert resolved["state"] == "Resolved" and resolved["pagerduty"]["resolve"] == "delivered"
    assert [e["dedup_key"] for e in _resolves(receiver)] == [dedup_key]  # the page's own key
    assert _switch_state(resume.out) == "Resumed"

    again = await start_run(config, command=("resume", "--incident", incident["id"]))
    assert await again.wait(EXIT_BOUND) == 0, again.stderr  # idempotent: nothing left to do
    assert len(integration.resume_calls) == 1 and len(_resolves(receiver)) == 1

    second = await start_run(config, duration=8)  # the integration still leaks
    assert await second.wait(EXIT_BOUND) == 0, second.stderr
    incidents = {r["id"]: r for r in second.incidents()}
    [new] = [r for i, r in incidents.items() if i != incident["id"]]
    print(
        f"figure: resume then a new leak: incidents {len(incidents)}, pages {len(_triggers(receiver))}, "
        f"resolves {len(_resolves(receiver))}, kill calls {len(integration.kill_calls)}"
    )
    assert incidents[incident["id"]]["state"] == "Resolved"
    assert new["state"] == "Open" and new["paged_at"] and new["shutdown"]["done"]
    assert [t["dedup_key"] for t in _triggers(receiver)] == [
        dedup_key,
        make_dedup_key(integration="leaky", incident=new["id"]),
    ]
    assert len(integration.kill_calls) == 2 and integration.off
    assert _switch_state(second.out) == "Engaged"


async def test_resume_of_an_unknown_incident_is_refused_naming_the_open_ones(
    integration: LeakyIntegration, receiver: EventsReceiver, start_run: Callable[..., Any]
) -> None:
    config, _, incident = await _first_run(integration, receiver, start_run, mode="alert-only")
    assert not integration.kill_calls  # an incident, no kill switch
    unknown = await start_run(config, command=("resume", "--incident", "nope"))
    assert await unknown.wait(EXIT_BOUND) == 2
    assert "no such incident of leaky" in unknown.stderr and incident["id"] in unknown.stderr
    # an alert-only incident has no kill switch to resume: resume closes it
    resume = await start_run(config, command=("resume", "--incident", incident["id"]))
    assert await resume.wait(EXIT_BOUND) == 0, resume.stderr
    assert resume.incidents()[0]["state"] == "Resolved" and not integration.resume_calls
    assert [e["dedup_key"] for e in _resolves(receiver)] == [
        make_dedup_key(integration="leaky", incident=incident["id"])
    ]


async def test_a_resume_cut_short_is_finished_by_the_next_run(
    integration: LeakyIntegration, receiver: EventsReceiver, start_run: Callable[..., Any]
) -> None:
    config, _, incident = await _first_run(integration, receiver, start_run)
    integration.script_resume("hang")  # the resume webhook hangs; the resume is killed
    resume = await start_run(config, command=("resume", "--incident", incident["id"]))
    await _until(lambda: bool(integration.resume_calls))
    resume.kill9()
    await resume.process.wait()
    assert _switch_state(resume.out) == "Resuming"
    assert resume.incidents()[0]["state"] == "Open"
    integration.leaking = False  # fixed; the hanging call stays hung (it never acts)

    second = await start_run(config, duration=5)
    await second.wait_for_line("RESOLVED")
    code = await second.wait(EXIT_BOUND)
    [resolved] = second.incidents()
    print(
        f"figure: resume killed mid-webhook, then run: resume calls {len(integration.resume_calls)}, "
        f"resolves {len(_resolves(receiver))}, state {second.summary()['state']}"
    )
    assert code == 0, second.stderr
    assert not integration.off and _switch_state(second.out) == "Resumed"
    assert resolved["state"] == "Resolved" and resolved["pagerduty"]["resolve"] == "delivered"
    assert [e["dedup_key"] for e in _resolves(receiver)] == [
        make_dedup_key(integration="leaky", incident=incident["id"])
    ]


async def test_a_second_process_on_the_same_out_is_refused_until_the_first_is_gone(
    integration: LeakyIntegration, receiver: EventsReceiver, start_run: Callable[..., Any]
) -> None:
    """A run and a resume on one ``--out`` would both read the journal and the
    kill-switch state, then write over each other's: the second is refused (exit 2,
    naming the holder) and the folder is free again once the holder dies, even by
    SIGKILL."""
    config = run_config(integration.url, receiver.url)
    first = await start_run(config, duration=120)
    await _until(lambda: bool(first.incidents()) and integration.off, timeout=EXIT_BOUND)
    [incident] = first.incidents()
    assert first.process is not None

    second = await start_run(config, duration=2)
    assert await second.wait(EXIT_BOUND) == 2
    assert f"in use by another canarywatch process (pid {first.process.pid})" in second.stderr, second.stderr
    resume = await start_run(config, command=("resume", "--incident", incident["id"]))
    assert await resume.wait(EXIT_BOUND) == 2
    assert "in use by another canarywatch process" in resume.stderr, resume.stderr
    assert integration.off and not integration.resume_calls  # the refused resume did nothing

    first.kill9()
    await first.process.wait()
    resume = await start_run(config, command=("resume", "--incident", incident["id"]))
    assert await resume.wait(EXIT_BOUND) == 0, resume.stderr
    assert not integration.off and len(integration.resume_calls) == 1
