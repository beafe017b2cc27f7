"""`canarywatch bench hostile`: what a hostile frame costs a viewer, and another tenant.

Two figures, each measured in one run against the same bytes:

- the decode of a ~99 KB progressive JPEG of ~1,200 scans at 4096×4096, without the
  decode budget (every scan decoded) and with it (refused from the header);
- a real leak to tenant A served while tenant B's viewer receives that frame: the
  time from the integration sending the leak to its verdict, and the detection time
  the incident would claim (verdict − arrival stamp), with decoding on the event loop
  and no budget (how viewers ran before), in the decode pool without the budget, and
  with both.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from aiohttp import web
from aiohttp.test_utils import TestServer

from canarywatch.bench.hostile import progressive_bomb
from canarywatch.markers import (
    Decoder,
    FrameSpec,
    ImageLimits,
    Keyring,
    Observation,
    encode_image,
    render_frame,
)
from canarywatch.markers.images import probe
from canarywatch.metrics import Metrics
from canarywatch.verdicts import Verdict
from canarywatch.viewer.decoding import DecodePool
from canarywatch.viewer.http import RequestTemplate
from canarywatch.viewer.judging import FrameResult, ViewerStream
from canarywatch.viewer.network import GOOD
from canarywatch.viewer.plan import StreamPlan
from canarywatch.viewer.runner import ViewerRunner

__all__ = ["run_hostile_benchmark"]

_UNBOUNDED = ImageLimits(max_scans=1 << 30, max_scan_pixels=1 << 62)
_NO_BUDGET_S = 1e9


class _OnTheLoop(DecodePool):
    """Decodes in the caller, on the event loop: how viewers decoded before the pool."""

    async def decode(self, decoder: Decoder, body: bytes) -> tuple[Observation, float]:
        return self._timed(decoder, body)


@dataclass
class _LeakTiming:
    served_to_verdict: float  # the integration sent the leak → its verdict
    claimed: float  # verdict − arrival stamp: what the incident records as detection time
    hostile_verdict: str


async def _leak_behind_hostile(keyring: Keyring, decoder: Decoder, pool: DecodePool) -> _LeakTiming:
    bomb = progressive_bomb()
    hostile_served = asyncio.Event()
    leak_sent: list[float] = []

    async def hostile(request: web.Request) -> web.Response:
        hostile_served.set()
        return web.Response(body=bomb, content_type="image/jpeg")

    async def leak(request: web.Request) -> web.Response:
        await hostile_served.wait()
        await asyncio.sleep(0.2)  # the hostile frame is being decoded by now
        body = encode_image(
            render_frame(FrameSpec("bravo", 0, 1, time.time(), 1280, 720), keyring.key("bravo"))
        )
        leak_sent.append(time.time())
        return web.Response(body=body, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/hostile.jpg", hostile)
    app.router.add_get("/leak.jpg", leak)
    results: list[FrameResult] = []

    async def handle(result: FrameResult) -> None:
        results.append(result)

    async with TestServer(app, host="127.0.0.1") as server:
        plans = []
        for tenant, path in (("bravo", "/hostile.jpg"), ("acme", "/leak.jpg")):
            request = RequestTemplate(url=str(server.make_url(path))).render(
                tenant=tenant, camera="0", token=""
            )
            stream = ViewerStream("bench", "hostile", tenant, 0, "snapshot", GOOD.name)
            plans.append(StreamPlan(stream, GOOD, (request,), 3600.0, 10.0))
        runner = ViewerRunner(plans, decoder=decoder, metrics=Metrics(), handle=handle, pool=pool)
        async with runner.running(), asyncio.timeout(600):
            while len(results) < 2:
                await asyncio.sleep(0.01)
    leaked = next(r for r in results if r.verdict is Verdict.CROSS_TENANT)
    other = next(r for r in results if r is not leaked)
    return _LeakTiming(leaked.judged_at - leak_sent[0], leaked.judged_at - leaked.received_at, other.verdict)


def run_hostile_benchmark(*, rounds: int = 5) -> int:
    keyring = Keyring.generate(["acme", "bravo"])
    bounded, unbounded = Decoder(keyring), Decoder(keyring, limits=_UNBOUNDED)
    bomb = progressive_bomb()
    scans = probe(bomb, _UNBOUNDED).scans
    print(f"hostile frame: progressive JPEG, {len(bomb)} bytes, {scans} scans, 4096x4096")

    started = time.perf_counter()
    slow = unbounded.decode(bomb, budget_s=_NO_BUDGET_S)
    without = time.perf_counter() - started
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fast = bounded.decode(bomb)
        times.append(time.perf_counter() - started)
    with_budget = statistics.median(times)
    print("\ndecode of the hostile frame")
    print(f"  without the decode budget  {without:10.3f} s  ({slow.status.value}: {slow.reason[:60]})")
    print(f"  with the decode budget     {with_budget:10.6f} s  ({fast.status.value}: {fast.reason[:60]})")
    print(f"  ratio                      {without / with_budget:10.0f}x")

    print("\na real leak to another tenant, served while the hostile frame is received")
    before = asyncio.run(_leak_behind_hostile(keyring, unbounded, _OnTheLoop(1, budget_s=_NO_BUDGET_S)))
    pool = DecodePool(budget_s=_NO_BUDGET_S)
    try:
        off_loop = asyncio.run(_leak_behind_hostile(keyring, unbounded, pool))
    finally:
        pool.close()
    pool = DecodePool()
    try:
        after = asyncio.run(_leak_behind_hostile(keyring, bounded, pool))
    finally:
        pool.close()
    print(f"  {'':36} {'leak sent -> verdict':>21} {'detection claimed':>18}")
    rows = (
        ("decoded on the loop, no budget", before),
        ("decode pool, no budget", off_loop),
        ("decode pool + budget", after),
    )
    for name, timing in rows:
        print(f"  {name:36} {timing.served_to_verdict:19.3f} s {timing.claimed:16.3f} s")
    print(
        f"  ratio (before / after)               {before.served_to_verdict / after.served_to_verdict:19.0f}x"
    )
    print(
        f"  before, the incident understated its detection time by "
        f"{before.served_to_verdict - before.claimed:.3f} s (arrival stamped after the stall)"
    )
    return 0
