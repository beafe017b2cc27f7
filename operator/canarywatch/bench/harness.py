"""What the pipeline benchmarks share: the relay-facing helpers, the tapped pipeline and
the table formatting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import resource
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from canarywatch.demo import ADMIN_TOKEN, demo_config
from canarywatch.incidents.receiver import EventsReceiver
from canarywatch.incidents.records import IncidentRecord
from canarywatch.monitor import Monitor
from canarywatch.relay import Fault, RelayConfig, RelayHandle, run_relay
from canarywatch.standalone import Pipeline
from canarywatch.verdicts import Verdict
from canarywatch.viewer.judging import FrameResult, ViewerStream

__all__ = [
    "HEIGHT",
    "MIB",
    "ROUTING_KEY",
    "WIDTH",
    "BenchPipeline",
    "DemoTarget",
    "Tap",
    "demo_target",
    "ms",
    "percentile",
    "put_frame",
    "quiet_logs",
    "rss_bytes",
    "tokens_for",
    "until",
]

WIDTH, HEIGHT = 640, 360
ROUTING_KEY = "bench" + "0" * 27
MIB = 1024 * 1024


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (p99 of fewer than 100 samples is their maximum)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1e3:.1f} ms"


def rss_bytes() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process in bytes, from /proc or getrusage."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
        )
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return peak, peak


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Kill-switch and relay warnings are the pipeline working; keep them off the table."""
    logger = logging.getLogger("canarywatch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


async def until(predicate: Callable[[], bool], *, timeout: float, step: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)
    return True


def tokens_for(tenants: Sequence[str]) -> dict[str, str]:
    return {t: f"tok-{t}-{secrets.token_hex(4)}" for t in tenants}


async def put_frame(http: aiohttp.ClientSession, url: str, token: str, jpeg: bytes) -> int:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"}
    async with http.put(url, data=jpeg, headers=headers) as resp:
        await resp.read()
        return resp.status


class Tap:
    """Sees every judged frame before the monitor does: verdicts per path and profile,
    and the newest own frame (capture seq) each stream has shown."""

    def __init__(self) -> None:
        self.newest_ok: dict[ViewerStream, int] = {}
        self.by_path: dict[str, Counter[str]] = {}
        self.low_variant: Counter[str] = Counter()  # frames the relay served as its q30 variant
        self.ages: dict[str, list[float]] = {}  # frame age (capture → received) of verified frames

    def record(self, result: FrameResult) -> None:
        key = f"{result.stream.kind}/{result.stream.profile}"
        self.by_path.setdefault(key, Counter())[result.verdict.value] += 1
        if result.meta.get("x-relay-variant") == "low":
            self.low_variant[key] += 1
        if result.age is not None:
            self.ages.setdefault(key, []).append(result.age)
        payload = result.observation.payload
        if result.verdict is Verdict.OK and payload is not None:
            newest = self.newest_ok.get(result.stream, -1)
            self.newest_ok[result.stream] = max(newest, payload.seq)

    def all_shown(self, streams: Sequence[ViewerStream], seq: int) -> bool:
        """Every stream has shown its own frame `seq` or a newer one."""
        return all(self.newest_ok.get(s, -1) >= seq for s in streams)


class BenchPipeline(Pipeline):
    """`Pipeline.run` until `stop()` (or `duration`), with a tap on the monitor."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tap = Tap()
        self.started = asyncio.Event()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def _handle(self, result: FrameResult) -> IncidentRecord | None:
        self.tap.record(result)
        return await super()._handle(result)

    async def _wait(
        self, started: float, duration: float | None, linger: float | None, monitor: Monitor
    ) -> None:
        # runs right after the monitor and the viewer tasks were created, before any frame
        self.started.set()
        timeout = None if duration is None else max(0.0, duration - (time.monotonic() - started))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._stop.wait()


@dataclass
class DemoTarget:
    """The reference relay (no fault) and the local Events v2 receiver over loopback, with
    the demo's standalone config for them (``doc``, to adjust before it is parsed)."""

    relay: RelayHandle
    receiver: EventsReceiver
    doc: dict[str, Any]


@contextlib.asynccontextmanager
async def demo_target(tokens: dict[str, str], **relay_settings: Any) -> AsyncIterator[DemoTarget]:
    relay = await run_relay(
        RelayConfig(tenants=tokens, admin_token=ADMIN_TOKEN, fault=Fault.NONE, **relay_settings)
    )
    receiver = EventsReceiver()
    await receiver.start()
    try:
        doc = demo_config(
            relay.base_url,
            tokens=tokens,
            fps=2.0,
            metrics_port=0,
            pd_url=receiver.url,
            routing_key=ROUTING_KEY,
        )
        yield DemoTarget(relay, receiver, doc)
    finally:
        await relay.stop()
        await receiver.stop()
