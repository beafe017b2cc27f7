"""Wire cameras, viewers and the monitor together and run them for a while.

`Pipeline` is what `canarywatch run` and `canarywatch demo` execute: canary cameras
publish to the integration, one viewer stream per (tenant, camera, path, network
profile) watches it, every frame goes through the `Monitor`, and the run ends after
`duration` seconds or shortly after the kill switch has switched the integration off.

The way out is bounded: results are written first, then pages and kill switches still
in flight get ``SHUTDOWN_GRACE_SECONDS`` in all (a hanging PagerDuty or webhook cannot
hold the exit), and an integration holding a camera's MJPEG pull open is cut off after
``SERVER_STOP_SECONDS``. Cameras and viewers get ``STOP_SECONDS`` to leave before the
results are written; one that does not (a WebRTC peer whose close hangs) is named in
the log and left behind. What was cut short stays on disk for the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canarywatch.camera import CameraFleet, CanaryCamera, PushTarget
from canarywatch.camera.streams import publish_streams
from canarywatch.coverage import PathCoverage, assess, fetch_counts, fetch_rates
from canarywatch.delivery import CameraDelivery, describe
from canarywatch.files import atomic_write
from canarywatch.incidents.pagerduty import EVENTS_URL, MemoryOutbox, Outbox, PagerDutyClient
from canarywatch.incidents.records import IncidentRecord
from canarywatch.markers import Decoder, Keyring
from canarywatch.metrics import Metrics, serve_metrics
from canarywatch.monitor import Monitor
from canarywatch.outages import PublishWatch
from canarywatch.serving import ServedApp
from canarywatch.shutdown import KillSwitch
from canarywatch.standalone.config import StandaloneConfig
from canarywatch.standalone.resume import resume_refusal
from canarywatch.tasks import cancel_within
from canarywatch.verdicts import Verdict
from canarywatch.viewer.judging import FrameResult
from canarywatch.viewer.plan import ViewerSpec, Watcher, plan_streams
from canarywatch.viewer.runner import RunningStream, ViewerRunner

__all__ = [
    "SERVER_STOP_SECONDS",
    "SHUTDOWN_GRACE_SECONDS",
    "STOP_SECONDS",
    "Pipeline",
    "ResumeRefused",
    "RunResult",
    "viewer_spec",
]

log = logging.getLogger(__name__)

#: Pages and kill switches still in flight at the end of a run get this long, in all.
SHUTDOWN_GRACE_SECONDS = 5.0
#: Open requests to the camera server (an MJPEG pull never ends) get this long.
SERVER_STOP_SECONDS = 1.0
#: Cameras and viewers told to stop get this long to leave (WebRTC sessions included).
STOP_SECONDS = 5.0
# How often a run restates its coverage (rates since the start), and after how long a
# path short of the target is warned about.
COVERAGE_INTERVAL = 2.0
COVERAGE_WARN_AFTER = 30.0


class ResumeRefused(Exception):
    """`canarywatch resume` named an incident it may not resume (the message says why)."""


@dataclass
class RunResult:
    summary: dict[str, Any]
    monitor: Monitor
    metrics: Metrics


def viewer_spec(config: StandaloneConfig, tokens: Mapping[str, str]) -> ViewerSpec:
    """The config's viewers as the plan's input: every tenant on every network profile,
    through the endpoints of ``probe.transports`` (as the operator gives its pods)."""
    viewer, probe = config.integration.viewer, config.probe
    return ViewerSpec(
        integration=config.integration.name,
        probe=probe.name,
        tenants=tuple(t.id for t in probe.tenants),
        watchers=tuple(Watcher(t.id, tokens[t.id]) for t in probe.tenants),
        cameras=probe.cameras_per_tenant,
        endpoints=config.viewer_endpoints(),
        profiles=probe.network_profiles,
        freshness_seconds=probe.freshness_seconds,
        poll_interval=viewer.poll_interval,
        freshness_by_path=probe.spec.freshness_by_path,
        hub_device=viewer.hub_device,
        hub_protocol=viewer.hub_protocol,
    )


class Pipeline:
    """One integration watched by one probe, from a `StandaloneConfig`."""

    def __init__(
        self,
        config: StandaloneConfig,
        *,
        keyring: Keyring,
        out_dir: Path | None,
        pagerduty_url: str | None = None,
        routing_key: str | None = None,
        metrics: Metrics | None = None,
        on_event: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.keyring = keyring
        self.out_dir = out_dir
        self.metrics = metrics or Metrics()
        self.on_event = on_event or (lambda message: log.info("%s", message))
        self.clock = clock
        integration = config.integration
        pd = integration.pagerduty
        self.routing_key = routing_key or (pd.key() if pd else None)
        self.pagerduty_url = pagerduty_url or (pd.url if pd and pd.url else EVENTS_URL)
        self.metrics_url: str | None = None
        self.viewers: ViewerRunner | None = None
        self.fleet: CameraFleet | None = None
        self.camera_server_url: str | None = None
        self.monitor: Monitor | None = None
        self.coverage: list[PathCoverage] = []

    # -- assembly ---------------------------------------------------------------------
    def _cameras(self) -> list[CanaryCamera]:
        probe = self.config.probe
        return [
            CanaryCamera(t.id, c, self.keyring.key(t.id), width=probe.width, height=probe.height)
            for t in probe.tenants
            for c in range(probe.cameras_per_tenant)
        ]

    def _push_targets(self, tokens: dict[str, str]) -> dict[tuple[str, int], PushTarget]:
        template = self.config.integration.camera.push
        assert template is not None
        probe = self.config.probe
        targets = {}
        for t in probe.tenants:
            for c in range(probe.cameras_per_tenant):
                req = template.render(tenant=t.id, camera=str(c), token=tokens[t.id])
                targets[(t.id, c)] = PushTarget(req.method, req.url, dict(req.headers))
        return targets

    @property
    def streams(self) -> list[RunningStream]:
        """The viewer streams of the current (or last) run."""
        return self.viewers.streams if self.viewers is not None else []

    async def _handle(self, result: FrameResult) -> IncidentRecord | None:
        assert self.monitor is not None
        return await self.monitor.handle(result)

    def _response(self) -> tuple[PagerDutyClient | None, Monitor]:
        """The PagerDuty client and the Monitor with the kill switch, state in ``out_dir``."""
        integration = self.config.integration
        pagerduty = None
        if self.routing_key:
            outbox = Outbox(self.out_dir / "pagerduty-outbox.jsonl") if self.out_dir else MemoryOutbox()
            pagerduty = PagerDutyClient(
                url=self.pagerduty_url,
                outbox=outbox,
                on_result=self.metrics.pagerduty_hook(),
                base_delay=0.2,
                max_delay=5.0,
            )
        kill_switch = None
        if integration.kill_actions:
            kill_switch = KillSwitch(
                integration.kill_actions,
                integration=integration.name,
                state_path=self.out_dir / "killswitch.json" if self.out_dir else None,
                on_action=self.metrics.killswitch_hook(namespace="", integration=integration.name),
            )
        monitor = self.monitor = Monitor(
            integration=integration.name,
            probe=self.config.probe.name,
            policy=integration.policy,
            metrics=self.metrics,
            pagerduty=pagerduty,
            routing_key=self.routing_key,
            page_options=integration.pagerduty.options if integration.pagerduty else None,
            kill_switch=kill_switch,
            out_dir=self.out_dir,
            on_event=self.on_event,
            clock=self.clock,
        )
        return pagerduty, monitor

    async def resume(self, incident: str) -> list[str]:
        """`canarywatch resume`: switch the integration back on for ``incident`` and
        resolve the open incidents (``Monitor.resume``); returns what is left unfinished.
        ``ResumeRefused`` (nothing done) when ``incident`` is not the one to resume."""
        pagerduty, monitor = self._response()
        switch = monitor.kill_switch.record if monitor.kill_switch is not None else None
        records = monitor.incidents.records()
        refusal = resume_refusal(incident, integration=monitor.integration, switch=switch, records=records)
        if refusal is not None:
            raise ResumeRefused(refusal)
        try:
            await monitor.resume(reason=f"resumed for {incident}")
        finally:
            if pagerduty is not None:
                await pagerduty.close()
            monitor.incidents.flush()
        return monitor.unfinished()

    # -- running ------------------------------------------------------------------------
    async def run(self, *, duration: float | None, linger_after_shutdown: float | None = 2.0) -> RunResult:
        """Run until `duration` elapses, or `linger_after_shutdown` s after a switch-off."""
        cfg = self.config
        integration = cfg.integration
        tokens = {t.id: t.token.resolve() for t in cfg.probe.tenants}
        # Servers stop on the way out however far the start got (LIFO: camera, then metrics).
        async with contextlib.AsyncExitStack() as servers:
            try:
                metrics_server = await serve_metrics(self.metrics, port=cfg.metrics_port or 0)
            except OSError as e:  # the configured port is taken: serve anyway, on a free one
                self.on_event(
                    f"metrics port {cfg.metrics_port} unavailable ({e.strerror}); using a free port"
                )
                metrics_server = await serve_metrics(self.metrics, port=0)
            servers.push_async_callback(metrics_server.stop)
            self.metrics_url = metrics_server.url
            self.metrics.prime_responses(namespace="", integration=integration.name)
            pagerduty, monitor = self._response()
            fleet = self.fleet = CameraFleet(self._cameras(), fps=cfg.probe.fps, clock=self.clock)
            self.metrics.delivery.publish_cameras(
                integration=integration.name, probe=cfg.probe.name, cameras=lambda: fleet.cameras
            )
            tasks: list[asyncio.Task[Any]] = []
            if integration.camera.push is not None:
                tasks.append(asyncio.create_task(fleet.run_push(self._push_targets(tokens))))
            elif integration.camera.stream is not None:
                streaming = publish_streams(fleet, integration.camera.stream, token=tokens.__getitem__)
                tasks.append(asyncio.create_task(streaming))
            else:
                camera_server = await ServedApp.start(
                    fleet.app(),
                    integration.camera.serve_host,
                    integration.camera.serve_port or 0,
                    shutdown_timeout=SERVER_STOP_SECONDS,
                )
                servers.push_async_callback(camera_server.stop)
                self.camera_server_url = camera_server.base_url
                tasks.append(asyncio.create_task(fleet.run_render()))
            viewers = self.viewers = ViewerRunner(
                plan_streams(viewer_spec(cfg, tokens)),
                decoder=Decoder(self.keyring),
                metrics=self.metrics,
                handle=self._handle,
                clock=self.clock,
            )
            if pagerduty is not None:
                tasks.append(asyncio.create_task(pagerduty.run()))
            hubs = {(t.id, p.name) for t in cfg.probe.tenants for p in cfg.probe.network_profiles}
            self.metrics.record_probe(
                namespace="", integration=integration.name, probe=cfg.probe.name, viewers=len(hubs)
            )
            tasks.append(asyncio.create_task(self._measure_coverage()))
            viewers.start()
            monitor.finish_recovered()  # what a previous run left undone
            started = time.monotonic()
            try:
                await self._wait(started, duration, linger_after_shutdown, monitor)
            finally:
                # cameras and viewers together, each bounded: one stuck leaving (a peer
                # connection whose close hangs) is left behind, the verdicts are written
                await asyncio.gather(cancel_within(tasks, STOP_SECONDS), viewers.stop(STOP_SECONDS))
                self._write(self._summary(monitor, time.monotonic() - started), monitor)  # before waiting
                deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
                await monitor.drain(timeout=SHUTDOWN_GRACE_SECONDS)
                if pagerduty is not None:
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                            await pagerduty.flush()
                    await pagerduty.close()
        summary = self._summary(monitor, time.monotonic() - started)
        self._write(summary, monitor)
        return RunResult(summary, monitor, self.metrics)

    def _write(self, summary: dict[str, Any], monitor: Monitor) -> None:
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(
            self.out_dir / "summary.json", (json.dumps(summary, indent=2) + "\n").encode(), mode=0o644
        )
        monitor.incidents.flush()

    async def _wait(
        self, started: float, duration: float | None, linger: float | None, monitor: Monitor
    ) -> None:
        switched_off_at: float | None = None
        reported: set[tuple[str, int]] = set()
        probe = self.config.probe
        publishers = PublishWatch(after_seconds=min(probe.freshness_seconds / 2, max(1.0, 2.0 / probe.fps)))
        while duration is None or time.monotonic() - started < duration:
            await asyncio.sleep(0.1)
            self._watch_publishers(monitor, publishers)
            for camera in self._undelivered(monitor):
                if (camera.tenant, camera.camera) not in reported:
                    reported.add((camera.tenant, camera.camera))
                    for line in describe([camera]):
                        self.on_event("WARNING " + line)
            if monitor.suspended and switched_off_at is None:
                switched_off_at = time.monotonic()
            if (
                switched_off_at is not None
                and linger is not None
                and time.monotonic() - switched_off_at >= linger
            ):
                return

    def _watch_publishers(self, monitor: Monitor, publishers: PublishWatch) -> None:
        """Cameras whose publisher fails are down, as camera pods are to the operator: their
        tenants' stale frames are counted, not acted on (``canarywatch.outages``). While
        canarywatch holds the integration off, its refusing the uploads is the kill switch
        holding, not a camera down: nothing is observed then."""
        if self.fleet is None or monitor.suspended:
            return
        now = self.clock()
        down: dict[str, tuple[str, str]] = {}
        for cam in self.fleet.cameras:
            if publishers.observe(
                (cam.tenant, cam.camera), published=cam.published, failed=cam.failed, at=now
            ):
                answer = f"HTTP {cam.last_status}" if cam.last_status is not None else "no answer"
                down.setdefault(cam.tenant, (f"{cam.tenant}/{cam.camera}", f"its publisher fails: {answer}"))
        went_down, came_back = monitor.outages.update(down, now)
        tenants = {t.id: t.id not in down for t in self.config.probe.tenants}
        self.metrics.record_cameras(
            namespace="", integration=monitor.integration, probe=monitor.probe, up=tenants
        )
        for tenant in went_down:
            outage = monitor.outages.down[tenant].describe()
            self.on_event(f"WARNING {outage}: tenant {tenant}'s stale frames are counted, not acted on")
        for tenant in came_back:
            self.on_event(f"the camera of tenant {tenant} publishes again")

    def _min_published(self) -> int:
        """Accepted frames after which a camera nobody saw is reported: as many as it
        sends in one freshness bound (at least 3), the longest a frame may take."""
        probe = self.config.probe
        return max(3, math.ceil(probe.fps * probe.freshness_seconds))

    def _undelivered(self, monitor: Monitor) -> list[CameraDelivery]:
        """Published vs seen now: the cameras whose accepted frames their tenant never saw."""
        if self.fleet is None:
            return []
        for camera in self.fleet.cameras:
            monitor.delivery.published(camera.tenant, camera.camera, camera.published)
        return monitor.delivery.undelivered(min_published=self._min_published())

    async def _measure_coverage(self) -> None:
        """Every ``COVERAGE_INTERVAL`` seconds: the probe's detection power from the fetch
        rates measured since the run started (``canarywatch.coverage``), in the metrics
        and the summary; a path short of the probe's target is warned about once, after
        ``COVERAGE_WARN_AFTER`` seconds (the first seconds undercount: streams connect)."""
        cfg = self.config
        name, target = cfg.probe.name, cfg.probe.spec.coverage_target
        confirmation = cfg.integration.policy.rules[Verdict.CROSS_TENANT].confirmation
        baseline = fetch_counts(self.metrics.samples(), probe=name, at=time.monotonic())
        warned: set[tuple[str, str]] = set()
        while True:
            await asyncio.sleep(COVERAGE_INTERVAL)
            counts = fetch_counts(self.metrics.samples(), probe=name, at=time.monotonic())
            rows = assess(
                fetch_rates(baseline, counts),
                target,
                frames=confirmation.frames,
                of_last=confirmation.of_last,
            )
            self.metrics.record_coverage(
                namespace="", integration=cfg.integration.name, probe=name, rows=rows
            )
            for row in rows:
                where = (row.path, row.network_profile)
                if (
                    not row.sufficient
                    and where not in warned
                    and counts.at - baseline.at >= COVERAGE_WARN_AFTER
                ):
                    warned.add(where)
                    self.on_event(f"WARNING coverage: {row.statement()}, short of the probe's target")
            self.coverage = rows or self.coverage

    def _summary(self, monitor: Monitor, elapsed: float) -> dict[str, Any]:
        self._undelivered(monitor)
        summary = monitor.summary()
        summary["delivery"] = monitor.delivery.summary(min_published=self._min_published())
        summary["coverage"] = [row.to_status() for row in self.coverage]
        summary["duration_seconds"] = round(elapsed, 3)
        summary["streams"] = len(self.streams)
        summary["viewer_network_errors"] = sum(s.errors for s in self.streams)
        if self.fleet is not None:
            summary["cameras"] = {
                "count": len(self.fleet.cameras),
                "frames_published": sum(c.published for c in self.fleet.cameras),
                "publish_failures": sum(c.failed for c in self.fleet.cameras),
            }
        summary["incident_records"] = [r.to_dict() for r in monitor.incidents.records()]
        return summary
