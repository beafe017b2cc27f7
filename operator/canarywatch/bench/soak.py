"""Benchmark 3, false positives: the pipeline against the relay with no fault, every viewer
on a poor or extreme network (see ``bench.pipeline``)."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from canarywatch.bench.harness import (
    HEIGHT,
    WIDTH,
    BenchPipeline,
    demo_target,
    quiet_logs,
    tokens_for,
    until,
)
from canarywatch.demo import DEMO_TENANTS
from canarywatch.markers import Keyring
from canarywatch.standalone import StandaloneConfig
from canarywatch.verdicts import Verdict

__all__ = ["SoakReport", "print_soak", "soak_benchmark"]


@dataclass
class SoakReport:
    seconds: float
    streams: int
    frames: int
    verdicts: dict[str, int]
    incidents: int
    warnings: int
    viewer_errors: int
    by_path: dict[str, Counter[str]]
    low_variant: Counter[str]
    ages: dict[str, list[float]]
    relay: dict[str, int]
    incident_lines: list[str] = field(default_factory=list)
    suspended_seconds: float = 0.0


async def _soak(seconds: float) -> SoakReport:
    tokens = tokens_for(DEMO_TENANTS)
    keyring = Keyring.generate(DEMO_TENANTS)
    async with demo_target(tokens, event_every_frames=4) as target:
        doc = target.doc
        doc["probe"]["networkProfiles"] = ["poor", "extreme"]
        doc["probe"]["frameSize"] = {"width": WIDTH, "height": HEIGHT}
        # The design's default response policy: on an extreme link an MJPEG stream can
        # lag far behind (that is what the hub would show), so stale is a warning there,
        # not the incident the demo escalates it to.
        doc["integration"]["policy"] = {"mode": "enforce"}
        config = StandaloneConfig.from_mapping(doc)
        with tempfile.TemporaryDirectory(prefix="canarywatch-soak-") as out:
            pipeline = BenchPipeline(config, keyring=keyring, out_dir=Path(out), on_event=lambda _: None)
            suspended: list[float] = []
            resumer = asyncio.create_task(_resume_after_incidents(pipeline, suspended))
            try:
                result = await pipeline.run(duration=seconds, linger_after_shutdown=None)
            finally:
                resumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resumer
        summary = result.summary
        records = result.monitor.incidents.records()
        return SoakReport(
            seconds=summary["duration_seconds"],
            streams=summary["streams"],
            frames=summary["frames"],
            verdicts=summary["verdicts"],
            incidents=len(summary["incident_records"]),
            warnings=summary["warnings"],
            viewer_errors=summary["viewer_network_errors"],
            by_path=pipeline.tap.by_path,
            low_variant=pipeline.tap.low_variant,
            ages=pipeline.tap.ages,
            relay=target.relay.relay.state.counters.as_dict(),
            incident_lines=[
                f"{r.verdict} on {r.path}/{r.network_profile} ({r.viewer_tenant} camera {r.viewer_camera}): "
                f"{r.reason}; switched off: {r.shutdown.done}"
                for r in records
            ],
            suspended_seconds=sum(suspended),
        )


async def _resume_after_incidents(pipeline: BenchPipeline, suspended: list[float]) -> None:
    """A false positive is counted, then undone (resume, resolve), so that the soak keeps
    watching a live integration for its whole duration and counts every one."""
    await pipeline.started.wait()
    monitor = pipeline.monitor
    assert monitor is not None
    handled = 0
    while True:
        await asyncio.sleep(0.1)
        records = monitor.incidents.records()
        for record in records[handled:]:
            shutdown = record.shutdown
            await until(lambda: shutdown.done or shutdown.skipped is not None, timeout=15.0)  # noqa: B023
            if monitor.kill_switch is not None and monitor.kill_switch.engaged:
                await monitor.kill_switch.resume()
                if shutdown.engaged_at is not None:
                    suspended.append(time.time() - shutdown.engaged_at)
            monitor.suspended = False
            monitor.metrics.record_suspended(namespace="", integration=monitor.integration, suspended=False)
            monitor.engine.resolve(Verdict(record.verdict))
        handled = len(records)


def soak_benchmark(seconds: float = 60.0) -> SoakReport:
    """The pipeline against the relay with no fault, every viewer on a poor or extreme network."""
    with quiet_logs():
        return asyncio.run(_soak(seconds))


def print_soak(report: SoakReport) -> None:
    print(
        f"\n== 3. false positives: no fault, {report.seconds:.0f} s, "
        "every viewer on a poor or extreme network =="
    )
    print(
        f"{report.streams} viewer streams (snapshot, MJPEG, event thumbnails, authorization probes) over "
        f"{len(DEMO_TENANTS)} tenants x 2 cameras at 2 fps, {WIDTH}x{HEIGHT}; default response policy"
    )
    counters = report.relay
    print(
        f"relay served: {counters['snapshots_served']} snapshots, "
        f"{counters['stream_parts_served']} MJPEG parts, {counters['thumbnails_served']} thumbnails; "
        f"{counters['low_variants_served']} of them the q30 low-bandwidth variant; "
        f"{counters['auth_failures']} authorization probes refused"
    )
    verdicts = sorted({v for c in report.by_path.values() for v in c})
    print(
        f"{'path/profile':<20} {'frames':>7} {'q30 variant':>12} {'age p50':>8} {'age max':>8} "
        + " ".join(f"{v:>12}" for v in verdicts)
    )
    for key in sorted(report.by_path):
        c = report.by_path[key]
        low = "n/a" if key.startswith("thumbnail") else str(report.low_variant[key])
        ages = report.ages.get(key, [])
        p50, top = (f"{statistics.median(ages):.1f} s", f"{max(ages):.1f} s") if ages else ("n/a", "n/a")
        print(
            f"{key:<20} {sum(c.values()):>7} {low:>12} {p50:>8} {top:>8} "
            + " ".join(f"{c[v]:>12}" for v in verdicts)
        )
    print(
        f"frames {report.frames}; incidents {report.incidents} (expected 0); warnings {report.warnings}; "
        f"viewer network errors/timeouts {report.viewer_errors}"
    )
    for line in report.incident_lines:
        print(f"  incident: {line}")
    if report.incident_lines:
        print(
            "  (each was counted, then resumed and resolved so that the soak went on watching; "
            f"switched off for {report.suspended_seconds * 1e3:.0f} ms in total)"
        )
