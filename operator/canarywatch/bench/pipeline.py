"""The pipeline benchmark (``run_pipeline_benchmark``, for a ``canarywatch bench pipeline``
command): how fast a leak is caught and switched off, what a viewer costs, and how quiet
the pipeline stays when nothing leaks.

Three measurements, each printed as a small table (figures, never assertions):

1. **Detect and switch off.** The standalone ``Pipeline`` watches the reference relay
   over loopback, pages the local PagerDuty Events v2 receiver and switches the relay
   off through its real admin webhook. Leaks are injected the way a misrouting bug
   produces them: another tenant's signed canary frame is uploaded into a victim
   camera's ingest. After each incident the kill switch is resumed (relay admin
   resume), the victim's viewers are seen to be back on their own frames, the policy
   engine's incident is resolved, and the next leak goes in.
2. **Viewer throughput and memory.** N snapshot viewers (the production transport,
   judge and monitor) poll 640×360 canary frames from the relay over loopback, in a
   fresh process of their own, so that process CPU time and RSS are the viewers'
   alone (the relay and the cameras run in the parent).
3. **False positives.** The pipeline against the relay with no fault, every viewer on
   the ``poor`` or ``extreme`` profile (slow viewers that send client hints get the
   relay's q30 low-bandwidth variant; the table counts who did), over snapshots, MJPEG,
   event thumbnails and authorization probes. An incident is counted, then resumed and
   resolved, so the soak watches a live integration for its whole duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import math
import os
import random
import resource
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from canarywatch.camera import CameraFleet, CanaryCamera, PushTarget
from canarywatch.demo import ADMIN_TOKEN, DEMO_TENANTS, demo_config
from canarywatch.incidents.policy import Policy
from canarywatch.incidents.receiver import EventsReceiver
from canarywatch.incidents.records import IncidentRecord
from canarywatch.markers import Decoder, Keyring
from canarywatch.metrics import Metrics
from canarywatch.monitor import Monitor
from canarywatch.relay import Fault, RelayConfig, RelayHandle, run_relay
from canarywatch.standalone import Pipeline, StandaloneConfig
from canarywatch.verdicts import Verdict
from canarywatch.viewer.http import RequestTemplate
from canarywatch.viewer.judging import FrameResult, ViewerStream
from canarywatch.viewer.network import GOOD
from canarywatch.viewer.plan import StreamPlan
from canarywatch.viewer.runner import ViewerRunner

__all__ = [
    "LeakReport",
    "LeakSample",
    "SoakReport",
    "ThroughputRow",
    "leak_benchmark",
    "print_leak_report",
    "print_soak",
    "print_throughput",
    "run_pipeline_benchmark",
    "soak_benchmark",
    "throughput_benchmark",
]

WIDTH, HEIGHT = 640, 360
DETECT_TARGET_S = 0.250
SWITCH_OFF_TARGET_S = 1.0
VERDICTS_PER_CORE_TARGET = 500.0
MIB_FOR_500_TARGET = 300.0
_ROUTING_KEY = "bench" + "0" * 27
_MIB = 1024 * 1024


# -- shared helpers --------------------------------------------------------------------------


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (p99 of fewer than 100 samples is their maximum)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1e3:.1f} ms"


def _rss_bytes() -> tuple[int, int]:
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
def _quiet_logs() -> Iterator[None]:
    """Kill-switch and relay warnings are the pipeline working; keep them off the table."""
    logger = logging.getLogger("canarywatch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


async def _until(predicate: Callable[[], bool], *, timeout: float, step: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)
    return True


def _tokens(tenants: Sequence[str]) -> dict[str, str]:
    return {t: f"tok-{t}-{secrets.token_hex(4)}" for t in tenants}


async def _put_frame(http: aiohttp.ClientSession, url: str, token: str, jpeg: bytes) -> int:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"}
    async with http.put(url, data=jpeg, headers=headers) as resp:
        await resp.read()
        return resp.status


class _Tap:
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


class _BenchPipeline(Pipeline):
    """`Pipeline.run` until `stop()` (or `duration`), with a tap on the monitor."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tap = _Tap()
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
            await asyncio.wait_for(self._stop.wait(), timeout)


# -- 1. detect and switch off ------------------------------------------------------------------


@dataclass(frozen=True)
class LeakSample:
    """One injected leak, from upload to switch-off (seconds)."""

    detect: float  # leaked frame received → incident recorded
    switch_off: float  # incident recorded → kill switch complete
    received_to_off: float  # leaked frame received → kill switch complete
    uploaded_to_off: float  # leak uploaded into the relay → kill switch complete
    page: float | None  # incident recorded → Events v2 answered 202
    path: str
    profile: str
    attempts: int  # uploads until a viewer saw it (1 = the first one)


@dataclass
class LeakReport:
    injected: int
    profiles: tuple[str, ...]
    samples: list[LeakSample] = field(default_factory=list)
    incidents: int = 0
    switched_off: int = 0
    paged: int = 0
    pagerduty_events: int = 0
    detected: int = 0  # leaks that opened an incident
    missed: int = 0  # leaks no viewer reported within the retries
    recoveries: list[float] = field(default_factory=list)  # resume → victim's viewers on own frames
    recovery_timeouts: int = 0
    streams: int = 0

    @property
    def unexpected(self) -> int:
        """Incidents beyond one per detected leak (there should be none)."""
        return self.incidents - self.detected


async def _measure_leaks(leaks: int, *, profiles: Sequence[str], seed: int) -> LeakReport:
    rng = random.Random(seed)
    tokens = _tokens(DEMO_TENANTS)
    victim, attacker = DEMO_TENANTS[0], DEMO_TENANTS[1]
    keyring = Keyring.generate(DEMO_TENANTS)
    report = LeakReport(injected=leaks, profiles=tuple(profiles))
    relay = await run_relay(RelayConfig(tenants=tokens, admin_token=ADMIN_TOKEN, fault=Fault.NONE))
    receiver = EventsReceiver()
    await receiver.start()
    try:
        doc = demo_config(
            relay.base_url,
            tokens=tokens,
            fps=2.0,
            metrics_port=0,
            pd_url=receiver.url,
            routing_key=_ROUTING_KEY,
        )
        integration = doc["integration"]
        # the leak is on the live paths; a thumbnail of it could surface after `resolve`
        # and open an incident no injection caused, so event feeds are left out here
        for path in ("events", "authzProbe"):
            integration["viewer"].pop(path)
        # every leak is switched off: lift the cap of 3 automatic kills per hour
        integration["policy"]["killCap"] = {"maxKills": leaks + 10, "windowSeconds": 3600}
        doc["probe"]["frameSize"] = {"width": WIDTH, "height": HEIGHT}
        doc["probe"]["networkProfiles"] = list(profiles)
        config = StandaloneConfig.from_mapping(doc)
        cameras = config.probe.cameras_per_tenant
        with tempfile.TemporaryDirectory(prefix="canarywatch-bench-") as out:
            pipeline = _BenchPipeline(config, keyring=keyring, out_dir=Path(out), on_event=lambda _: None)
            run = asyncio.create_task(pipeline.run(duration=None, linger_after_shutdown=None))
            try:
                await asyncio.wait_for(pipeline.started.wait(), 10.0)
                async with aiohttp.ClientSession() as http:
                    injector = _LeakInjector(
                        pipeline,
                        relay,
                        http,
                        victim=victim,
                        attacker=attacker,
                        tokens=tokens,
                        keyring=keyring,
                    )
                    await _leak_loop(injector, report, cameras, rng)
            finally:
                pipeline.stop()
                result = await run
        report.streams = result.summary["streams"]
        records = result.monitor.incidents.records()
        report.incidents = len(records)
        report.switched_off = sum(1 for r in records if r.shutdown.done)
        report.paged = sum(1 for r in records if r.paged_at is not None)
        report.pagerduty_events = len(receiver.events)
    finally:
        await relay.stop()
        await receiver.stop()
    return report


class _LeakInjector:
    """Injects leaks into a running `_BenchPipeline` one at a time and restores after each."""

    def __init__(
        self,
        pipeline: _BenchPipeline,
        relay: RelayHandle,
        http: aiohttp.ClientSession,
        *,
        victim: str,
        attacker: str,
        tokens: dict[str, str],
        keyring: Keyring,
    ) -> None:
        monitor, fleet = pipeline.monitor, pipeline.fleet
        assert monitor is not None and fleet is not None and monitor.kill_switch is not None
        self.pipeline, self.monitor, self.fleet = pipeline, monitor, fleet
        self.kill_switch = monitor.kill_switch
        self.relay, self.http = relay, http
        self.victim, self.token = victim, tokens[victim]
        self.intruder = CanaryCamera(
            attacker, 0, keyring.key(attacker), width=WIDTH, height=HEIGHT, seq=10_000
        )

    def watching(self, camera: int) -> list[ViewerStream]:
        streams = self.pipeline.streams
        return [s.stream for s in streams if s.stream.tenant == self.victim and s.stream.camera == camera]

    async def warm_up(self) -> None:
        """Wait until every viewer of the victim has shown one of its own frames.

        Bounded at 60 s: on a lossy profile a lost MJPEG connect waits out the reader's
        30 s timeout before it retries."""
        tap = self.pipeline.tap
        victims = [s.stream for s in self.pipeline.streams if s.stream.tenant == self.victim]
        if not await _until(lambda: tap.all_shown(victims, 0), timeout=60.0, step=0.05):
            raise RuntimeError("the victim's viewers did not receive their own frames within 60 s")

    async def inject(self, camera: int, *, tries: int = 5) -> tuple[IncidentRecord, float, int] | None:
        """Upload the leak until an incident opens: (record, upload time, uploads)."""
        ingest = f"{self.relay.base_url}/v3/devices/{self.victim}/{camera}/frame"
        incidents = self.monitor.incidents
        before = len(incidents)
        for attempt in range(1, tries + 1):
            # another tenant's signed frame lands in the victim's slot: a misrouting bug
            leaked = self.intruder.next_frame(time.time())
            uploaded_at = time.time()
            status = await _put_frame(self.http, ingest, self.token, leaked)
            if status != 204:
                raise RuntimeError(f"the relay refused the leaked upload ({status})")
            if await _until(lambda: len(incidents) > before, timeout=3.0):
                return incidents.records()[before], uploaded_at, attempt
        return None

    async def settle(self, record: IncidentRecord) -> None:
        """Wait for the switch-off and the page of `record` (bounded)."""
        shutdown = record.shutdown
        await _until(lambda: shutdown.done or shutdown.skipped is not None, timeout=15.0)
        await _until(lambda: record.paged_at is not None, timeout=10.0)

    async def restore(self, camera: int) -> float | None:
        """Relay back on, a new frame of the victim's camera uploaded, and every viewer of
        that camera seen showing it (or a newer one); only then is the incident closed.

        Streams deliver in order, so a viewer that has shown a frame captured after the
        resume has nothing older (the leak) still in flight: on a poor link MJPEG parts
        arrive seconds late, and a late copy after `resolve` would open an incident that
        no injection caused. Returns the seconds that took (None: not within 60 s)."""
        monitor = self.monitor
        started = time.monotonic()
        if self.kill_switch.engaged:
            await self.kill_switch.resume()
        monitor.suspended = False
        monitor.metrics.record_suspended(integration=monitor.integration, suspended=False)
        own = self.fleet.camera(self.victim, str(camera))
        assert own is not None
        ingest = f"{self.relay.base_url}/v3/devices/{self.victim}/{camera}/frame"
        await _put_frame(self.http, ingest, self.token, own.next_frame(time.time()))
        tap, streams, seq = self.pipeline.tap, self.watching(camera), own.seq
        # a lost request on a poor link waits out its 10 s timeout, then backs off
        recovered = await _until(lambda: tap.all_shown(streams, seq), timeout=60.0)
        monitor.engine.resolve(Verdict.CROSS_TENANT)
        return time.monotonic() - started if recovered else None


async def _leak_loop(injector: _LeakInjector, report: LeakReport, cameras: int, rng: random.Random) -> None:
    await injector.warm_up()
    for index in range(report.injected):
        camera = index % cameras
        # a random phase against the cameras' own uploads (seeded: repeatable)
        await asyncio.sleep(rng.uniform(0.0, 0.5))
        injected = await injector.inject(camera)
        if injected is None:
            report.missed += 1
            continue
        record, uploaded_at, attempts = injected
        report.detected += 1
        await injector.settle(record)
        if record.shutdown.done and record.shutdown.seconds is not None:
            off_at = record.recorded_at + record.shutdown.seconds
            report.samples.append(
                LeakSample(
                    detect=record.detection_seconds,
                    switch_off=record.shutdown.seconds,
                    received_to_off=off_at - record.frame_received_at,
                    uploaded_to_off=off_at - uploaded_at,
                    page=None if record.paged_at is None else record.paged_at - record.recorded_at,
                    path=record.path,
                    profile=record.network_profile,
                    attempts=attempts,
                )
            )
        recovery = await injector.restore(camera)
        if recovery is None:
            report.recovery_timeouts += 1
        else:
            report.recoveries.append(recovery)


def leak_benchmark(
    leaks: int = 20, *, profiles: Sequence[str] = ("good", "poor"), seed: int = 2019
) -> LeakReport:
    """Inject `leaks` leaks into the reference relay and time each one's detection and
    switch-off; viewers watch on the network `profiles` (presets)."""
    with _quiet_logs():
        return asyncio.run(_measure_leaks(leaks, profiles=profiles, seed=seed))


def print_leak_report(report: LeakReport) -> None:
    s = report.samples
    print(
        f"\n== 1. detect and switch off: {report.injected} leaks injected into the reference relay "
        "over loopback =="
    )
    print(
        f"leak: another tenant's signed {WIDTH}x{HEIGHT} canary frame uploaded into a victim camera's "
        "ingest (what a misrouting bug produces);"
    )
    print(
        f"{report.streams} viewer streams (snapshot + MJPEG; {' + '.join(report.profiles)} networks); "
        "kill switch = relay admin webhook; pages to the local Events v2 receiver"
    )
    rows: list[tuple[str, list[float], float | None]] = [
        ("detect: frame received -> incident recorded", [x.detect for x in s], DETECT_TARGET_S),
        ("switch off: incident -> kill switch complete", [x.switch_off for x in s], SWITCH_OFF_TARGET_S),
        ("frame received -> switched off", [x.received_to_off for x in s], None),
        ("leak uploaded -> switched off", [x.uploaded_to_off for x in s], None),
        ("page: incident -> Events v2 accepted (202)", [x.page for x in s if x.page is not None], None),
        ("recovery: resume -> victim's viewers on own frames", report.recoveries, None),
    ]
    print(f"{'measure':<52} {'n':>3} {'p50':>10} {'p99':>10} {'max':>10}  target")
    for name, values, target in rows:
        print(
            f"{name:<52} {len(values):>3} {_ms(statistics.median(values) if values else math.nan):>10} "
            f"{_ms(_percentile(values, 99)):>10} {_ms(max(values) if values else math.nan):>10}  "
            + ("" if target is None else f"p99 <= {_ms(target)}")
        )
    seen_via = Counter(f"{x.path}/{x.profile}" for x in s)
    reuploads = sum(x.attempts - 1 for x in s)
    print(
        f"incidents {report.incidents} (leaks detected {report.detected} of {report.injected}, missed "
        f"{report.missed}, unexpected {report.unexpected}); switched off {report.switched_off}; paged "
        f"{report.paged} ({report.pagerduty_events} events at the receiver); re-uploads {reuploads}; "
        f"recoveries over 60 s {report.recovery_timeouts}"
    )
    print("first seen via: " + ", ".join(f"{k} {v}" for k, v in seen_via.most_common()))
    print("p99 is nearest-rank: with fewer than 100 leaks it is the slowest one.")
    print(
        "The incidents this project exists for took about 7 days (Xiaomi x Nest Hub, 26 Dec 2019 - "
        "2 Jan 2020, found on Reddit) and were found by users (Wyze 2023/2024)."
    )


# -- 2. viewer throughput and memory -------------------------------------------------------------


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
        return (self.rss_after - self.rss_before) / _MIB / self.streams * 100


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
        "from canarywatch.bench.pipeline import _viewer_main; _viewer_main()",
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
    rss_before, _ = _rss_bytes()
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
        rss_after, rss_peak = _rss_bytes()
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
    tokens = _tokens(names)
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
        await _until(lambda: all(c.published for c in fleet.cameras), timeout=30.0, step=0.05)
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
    with _quiet_logs():
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
            f"{r.rss_before / _MIB:>7.0f} MiB {r.rss_after / _MIB:>6.0f} MiB {r.mib_per_100:>16.1f} "
            f"{r.viewer_errors:>7} {r.relay_cpu_use:>10.0%}"
        )
    for r in rows:
        print(f"verdicts with {r.streams} streams: {r.verdict_counts}")
    print(
        f"targets: >= {VERDICTS_PER_CORE_TARGET:.0f} verdicts/s/core (verdicts per CPU-second of the viewer "
        f"process); <= {MIB_FOR_500_TARGET:.0f} MiB for 500 streams (the RSS after column, whole process)"
    )


# -- 3. false positives under degraded delivery ------------------------------------------------


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
    tokens = _tokens(DEMO_TENANTS)
    keyring = Keyring.generate(DEMO_TENANTS)
    relay = await run_relay(
        RelayConfig(tenants=tokens, admin_token=ADMIN_TOKEN, fault=Fault.NONE, event_every_frames=4)
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
            routing_key=_ROUTING_KEY,
        )
        doc["probe"]["networkProfiles"] = ["poor", "extreme"]
        doc["probe"]["frameSize"] = {"width": WIDTH, "height": HEIGHT}
        # The design's default response policy: on an extreme link an MJPEG stream can
        # lag far behind (that is what the hub would show), so stale is a warning there,
        # not the incident the demo escalates it to.
        doc["integration"]["policy"] = {"mode": "enforce"}
        config = StandaloneConfig.from_mapping(doc)
        with tempfile.TemporaryDirectory(prefix="canarywatch-soak-") as out:
            pipeline = _BenchPipeline(config, keyring=keyring, out_dir=Path(out), on_event=lambda _: None)
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
            relay=relay.relay.state.counters.as_dict(),
            incident_lines=[
                f"{r.verdict} on {r.path}/{r.network_profile} ({r.viewer_tenant} camera {r.viewer_camera}): "
                f"{r.reason}; switched off: {r.shutdown.done}"
                for r in records
            ],
            suspended_seconds=sum(suspended),
        )
    finally:
        await relay.stop()
        await receiver.stop()


async def _resume_after_incidents(pipeline: _BenchPipeline, suspended: list[float]) -> None:
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
            await _until(lambda: shutdown.done or shutdown.skipped is not None, timeout=15.0)  # noqa: B023
            if monitor.kill_switch is not None and monitor.kill_switch.engaged:
                await monitor.kill_switch.resume()
                if shutdown.engaged_at is not None:
                    suspended.append(time.time() - shutdown.engaged_at)
            monitor.suspended = False
            monitor.metrics.record_suspended(integration=monitor.integration, suspended=False)
            monitor.engine.resolve(Verdict(record.verdict))
        handled = len(records)


def soak_benchmark(seconds: float = 60.0) -> SoakReport:
    """The pipeline against the relay with no fault, every viewer on a poor or extreme network."""
    with _quiet_logs():
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


# -- all of it ------------------------------------------------------------------------------------


def run_pipeline_benchmark(
    *,
    leaks: int = 20,
    streams: tuple[int, ...] = (100, 500),
    seconds: float = 10.0,
    soak_seconds: float = 60.0,
) -> int:
    """Print the three tables; 0 when every leak was caught and switched off and the soak was quiet."""
    leak_report = leak_benchmark(leaks)
    print_leak_report(leak_report)
    interval, tenants, cameras = 0.25, 10, 2
    rows = throughput_benchmark(
        streams, seconds, interval=interval, tenants=tenants, cameras_per_tenant=cameras
    )
    print_throughput(rows, interval=interval, tenants=tenants, cameras=cameras)
    soak = soak_benchmark(soak_seconds)
    print_soak(soak)
    caught = leak_report.detected == leaks and leak_report.switched_off == leaks
    return 0 if caught and leak_report.unexpected == 0 and soak.incidents == 0 else 1
