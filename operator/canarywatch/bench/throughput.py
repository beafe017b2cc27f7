"""Benchmark 2, viewer throughput and memory: snapshot viewers in a process of their own
(see ``bench.pipeline``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from canarywatch.bench.harness import (
    HEIGHT,
    MIB,
    WIDTH,
    quiet_logs,
    rss_bytes,
    tokens_for,
    until,
)
from canarywatch.camera import CameraFleet, CanaryCamera, PushTarget
from canarywatch.demo import ADMIN_TOKEN
from canarywatch.incidents.policy import Policy
from canarywatch.markers import Decoder, Keyring
from canarywatch.metrics import Metrics
from canarywatch.monitor import Monitor
from canarywatch.relay import Fault, RelayConfig, run_relay
from canarywatch.viewer.http import RequestTemplate
from canarywatch.viewer.judging import ViewerStream
from canarywatch.viewer.network import GOOD
from canarywatch.viewer.plan import StreamPlan
from canarywatch.viewer.runner import ViewerRunner

__all__ = [
    "MIB_FOR_500_TARGET",
    "VERDICTS_PER_CORE_TARGET",
    "ThroughputRow",
    "print_throughput",
    "throughput_benchmark",
]

VERDICTS_PER_CORE_TARGET = 500.0
MIB_FOR_500_TARGET = 300.0


@dataclass(frozen=True)
class _ViewerJob:
    base_url: str
    tokens: dict[str, str]
    keyring_json: str = field(repr=False)
    cameras_per_tenant: int
    streams: int
    seconds: float
    warmup: float
    interval: float


@dataclass(frozen=True)
class ThroughputRow:
    streams: int
    wall_seconds: float
    cpu_seconds: float
    verdicts: int
    verdict_counts: dict[str, int]
    viewer_errors: int
    rss_before: int
    rss_after: int
    rss_peak: int
    window: tuple[float, float] = (0.0, 0.0)  # wall-clock (time.time) start and end
    #: CPU use of the relay + cameras process over the same window (1.0 = one core)
    relay_cpu_use: float = math.nan

    @property
    def per_cpu_second(self) -> float:
        return self.verdicts / self.cpu_seconds if self.cpu_seconds > 0 else math.nan

    @property
    def per_wall_second(self) -> float:
        return self.verdicts / self.wall_seconds if self.wall_seconds > 0 else math.nan

    @property
    def mib_per_100(self) -> float:
        return (self.rss_after - self.rss_before) / MIB / self.streams * 100


def _viewer_main() -> None:
    """Entry point of the viewer process: a `_ViewerJob` as JSON on stdin, the
    `ThroughputRow` as JSON on stdout. A process of its own, so that its CPU time and
    RSS are the viewers' alone."""
    logging.getLogger("canarywatch").setLevel(logging.ERROR)
    job = _ViewerJob(**json.loads(sys.stdin.read()))
    row = asyncio.run(_viewers(job))
    sys.stdout.write(json.dumps(dataclasses.asdict(row)))


async def _run_viewer_process(job: _ViewerJob) -> ThroughputRow:
    """Start a fresh interpreter for `job` (not multiprocessing: that re-imports the
    caller's main module, which breaks scripts without a ``__main__`` guard)."""
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": package_root + (os.pathsep + path if path else "")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from canarywatch.bench.throughput import _viewer_main; _viewer_main()",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await process.communicate(json.dumps(dataclasses.asdict(job)).encode())
    if process.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"viewer process exited with {process.returncode}: " + " | ".join(tail))
    data = json.loads(out)
    data["window"] = tuple(data["window"])
    return ThroughputRow(**data)


async def _viewers(job: _ViewerJob) -> ThroughputRow:
    decoder = Decoder(Keyring.from_json(job.keyring_json))
    metrics = Metrics()
    monitor = Monitor(integration="bench", probe="throughput", policy=Policy(), metrics=metrics)
    template = RequestTemplate.from_mapping(
        {
            "url": job.base_url + "/v3/devices/{tenant}/{camera}/live.jpg",
            "headers": {"Authorization": "Bearer {token}"},
        },
        where="viewer.snapshot",
    )
    tenants = sorted(job.tokens)
    decoder.decode(b"")  # lazy initialisation happens before the baseline
    gc.collect()
    rss_before, _ = rss_bytes()
    plan = []
    for i in range(job.streams):
        tenant = tenants[i % len(tenants)]
        camera = (i // len(tenants)) % job.cameras_per_tenant
        request = template.render(tenant=tenant, camera=str(camera), token=job.tokens[tenant])
        stream = ViewerStream("bench", "throughput", tenant, camera, "snapshot", GOOD.name)
        plan.append(StreamPlan(stream, GOOD, (request,), interval_s=job.interval, max_age=10.0))
    # the production runner: a session per stream, transport, judge and monitor
    viewers = ViewerRunner(plan, decoder=decoder, metrics=metrics, handle=monitor.handle)
    async with viewers.running():
        await asyncio.sleep(job.warmup)
        verdicts0, cpu0, wall0 = sum(monitor.verdicts.values()), time.process_time(), time.monotonic()
        start = time.time()
        await asyncio.sleep(job.seconds)
        verdicts1, cpu1, wall1 = sum(monitor.verdicts.values()), time.process_time(), time.monotonic()
        end = time.time()
        rss_after, rss_peak = rss_bytes()
    return ThroughputRow(
        streams=job.streams,
        wall_seconds=wall1 - wall0,
        cpu_seconds=cpu1 - cpu0,
        verdicts=verdicts1 - verdicts0,
        verdict_counts=dict(sorted(monitor.verdicts.items())),
        viewer_errors=viewers.errors,
        rss_before=rss_before,
        rss_after=rss_after,
        rss_peak=rss_peak,
        window=(start, end),
    )


async def _sample_cpu(into: list[tuple[float, float]], every: float = 0.1) -> None:
    """(wall-clock time, process CPU time) of this process, every `every` seconds."""
    while True:
        into.append((time.time(), time.process_time()))
        await asyncio.sleep(every)


def _cpu_use(samples: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """CPU seconds per wall second between the samples closest to `start` and `end`."""
    if len(samples) < 2:
        return math.nan
    first = min(samples, key=lambda s: abs(s[0] - start))
    last = min(samples, key=lambda s: abs(s[0] - end))
    return (last[1] - first[1]) / (last[0] - first[0]) if last[0] > first[0] else math.nan


async def _measure_throughput(
    streams: Sequence[int], seconds: float, *, interval: float, tenants: int, cameras_per_tenant: int
) -> list[ThroughputRow]:
    names = [f"tenant-{i:02d}" for i in range(tenants)]
    tokens = tokens_for(names)
    keyring = Keyring.generate(names)
    relay = await run_relay(RelayConfig(tenants=tokens, admin_token=ADMIN_TOKEN, fault=Fault.NONE))
    fleet = CameraFleet(
        [
            CanaryCamera(t, c, keyring.key(t), width=WIDTH, height=HEIGHT)
            for t in names
            for c in range(cameras_per_tenant)
        ],
        fps=2.0,
    )
    targets = {
        (cam.tenant, cam.camera): PushTarget(
            "PUT",
            f"{relay.base_url}/v3/devices/{cam.tenant}/{cam.camera}/frame",
            {"Authorization": f"Bearer {tokens[cam.tenant]}"},
        )
        for cam in fleet.cameras
    }
    cameras = asyncio.create_task(fleet.run_push(targets))
    rows: list[ThroughputRow] = []
    try:
        await until(lambda: all(c.published for c in fleet.cameras), timeout=30.0, step=0.05)
        for n in streams:
            job = _ViewerJob(
                base_url=relay.base_url,
                tokens=tokens,
                keyring_json=keyring.to_json(),
                cameras_per_tenant=cameras_per_tenant,
                streams=n,
                seconds=seconds,
                warmup=min(2.0, max(0.5, seconds / 4)),
                interval=interval,
            )
            # a fresh process per size: its RSS baseline is an idle viewer process
            samples: list[tuple[float, float]] = []
            sampler = asyncio.create_task(_sample_cpu(samples))
            try:
                row = await _run_viewer_process(job)
            finally:
                sampler.cancel()
            rows.append(dataclasses.replace(row, relay_cpu_use=_cpu_use(samples, *row.window)))
    finally:
        cameras.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cameras
        await relay.stop()
    return rows


def throughput_benchmark(
    streams: Sequence[int] = (100, 500),
    seconds: float = 10.0,
    *,
    interval: float = 0.25,
    tenants: int = 10,
    cameras_per_tenant: int = 2,
) -> list[ThroughputRow]:
    """Snapshot viewers at 640×360 over loopback: verdicts per CPU-second and RSS per stream count."""
    with quiet_logs():
        return asyncio.run(
            _measure_throughput(
                tuple(streams),
                seconds,
                interval=interval,
                tenants=tenants,
                cameras_per_tenant=cameras_per_tenant,
            )
        )


def print_throughput(rows: Sequence[ThroughputRow], *, interval: float, tenants: int, cameras: int) -> None:
    print(f"\n== 2. viewer throughput: snapshot polling of {WIDTH}x{HEIGHT} canary frames over loopback ==")
    print(
        f"viewers in a fresh process of their own (relay + {tenants * cameras} cameras at 2 fps in the "
        f"parent); each stream polls every {interval:g} s with its own HTTP session, judges every "
        "frame and hands it to the monitor"
    )
    print(
        f"{'streams':>7} {'verdicts':>9} {'wall s':>7} {'verdicts/s':>11} {'CPU s':>7} {'CPU use':>8} "
        f"{'verdicts/CPU-s':>15} {'RSS before':>11} {'RSS after':>10} {'MiB/100 streams':>16} {'errors':>7} "
        f"{'relay CPU':>10}"
    )
    for r in rows:
        print(
            f"{r.streams:>7} {r.verdicts:>9} {r.wall_seconds:>7.1f} {r.per_wall_second:>11.0f} "
            f"{r.cpu_seconds:>7.1f} {r.cpu_seconds / r.wall_seconds:>7.0%} {r.per_cpu_second:>15.0f} "
            f"{r.rss_before / MIB:>7.0f} MiB {r.rss_after / MIB:>6.0f} MiB {r.mib_per_100:>16.1f} "
            f"{r.viewer_errors:>7} {r.relay_cpu_use:>10.0%}"
        )
    for r in rows:
        print(f"verdicts with {r.streams} streams: {r.verdict_counts}")
    print(
        f"targets: >= {VERDICTS_PER_CORE_TARGET:.0f} verdicts/s/core (verdicts per CPU-second of the viewer "
        f"process); <= {MIB_FOR_500_TARGET:.0f} MiB for 500 streams (the RSS after column, whole process)"
    )
