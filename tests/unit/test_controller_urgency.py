"""Urgent work first (``controller.urgency``): while a kill switch runs, the probes'
bulk calls wait, the kill switch's own calls do not. Against a real local HTTP server."""

from __future__ import annotations

import asyncio

from configmap_server import kube_at, serve_config_maps
from controlplane import free_port

from canarywatch.controller.kube import CONFIG_MAPS, bulk
from canarywatch.controller.urgency import Urgency


async def test_bulk_work_waits_until_urgent_work_is_done() -> None:
    urgency = Urgency()
    waited: list[str] = []

    async def bulk_work(name: str) -> None:
        await urgency.unhurried()
        waited.append(name)

    async with urgency.urgent():
        async with urgency.urgent():  # two incidents at once
            task = asyncio.create_task(bulk_work("reconcile"))
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)
        assert waited == [], "bulk work ran while a kill switch was on its way"
    await asyncio.wait_for(task, 5)
    assert waited == ["reconcile"]


async def test_bulk_work_is_held_back_no_longer_than_the_hold() -> None:
    urgency = Urgency(hold_seconds=0.05)
    async with urgency.urgent():
        # a kill switch stuck on a slow webhook: the probes go on meanwhile
        await asyncio.wait_for(urgency.unhurried(), 5)


async def test_without_urgent_work_nothing_waits() -> None:
    await asyncio.wait_for(Urgency(hold_seconds=60).unhurried(), 1)


async def test_the_kill_switch_calls_go_out_while_bulk_calls_wait() -> None:
    port = free_port()
    seen: list[str] = []
    runner = await serve_config_maps(port, seen=seen)
    kube = kube_at(port)

    async def reconcile() -> None:
        with bulk():
            await kube.get(CONFIG_MAPS, "default", "probe-objects")

    try:
        async with kube.urgency.urgent():
            reconciling = asyncio.create_task(reconcile())
            await kube.get(CONFIG_MAPS, "default", "kill-switch")
            await asyncio.sleep(0.1)
            assert seen == ["kill-switch"]
        await asyncio.wait_for(reconciling, 10)
        assert seen == ["kill-switch", "probe-objects"]
    finally:
        kube.close()
        await runner.cleanup()


async def test_bulk_work_told_to_stop_as_the_kill_switch_finishes_stops() -> None:
    """The operator stopping (say, its lease lost) as the last kill switch ends: the
    waiting reconcile is cancelled, not run. ``asyncio.wait_for`` on Python 3.11 drops a
    cancellation that lands in the loop pass where the awaited event is set."""
    cancelled_while_waiting = 0
    for passes in range(3):
        urgency = Urgency()
        async with urgency.urgent():
            waiting = asyncio.create_task(urgency.unhurried())
            await asyncio.sleep(0)
        for _ in range(passes):
            await asyncio.sleep(0)
        if waiting.done():  # it saw the kill end before the stop: nothing to check
            continue
        cancelled_while_waiting += 1
        waiting.cancel()
        await asyncio.wait([waiting])
        assert waiting.cancelled(), f"the cancellation was dropped ({passes} loop passes after the kill)"
    assert cancelled_while_waiting


async def test_a_leak_seen_holds_bulk_work_until_its_response_has_run() -> None:
    """``expect``: from the moment a LeakIncident that needs a response is seen, before
    its handler marks itself urgent, through to the end of that urgent work."""
    urgency = Urgency(hold_seconds=60)
    urgency.expect(seconds=60)
    waiting = asyncio.create_task(urgency.unhurried())
    await asyncio.sleep(0.05)
    assert not waiting.done(), "bulk work ran while a seen LeakIncident waited for its handler"
    async with urgency.urgent():
        await asyncio.sleep(0.05)
        assert not waiting.done()
    await asyncio.wait_for(waiting, 5)


async def test_an_expectation_no_urgent_work_meets_lapses() -> None:
    urgency = Urgency(hold_seconds=60)
    urgency.expect(seconds=0.05)
    await asyncio.wait_for(urgency.unhurried(), 5)
    urgency.expect(seconds=0.05)
    urgency.expect(seconds=0.05)  # seen twice: one expectation, it still lapses
    await asyncio.wait_for(urgency.unhurried(), 5)
