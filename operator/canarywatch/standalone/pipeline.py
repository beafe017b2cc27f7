"""Wire cameras, viewers and the monitor together and run them for a while.

`Pipeline` is what `canarywatch run` and `canarywatch demo` execute: canary cameras
publish to the integration, one viewer stream per (tenant, camera, path, network
profile) watches it, every frame goes through the `Monitor`, and the run ends after
`duration` seconds or shortly after the kill switch has switched the integration off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from canarywatch.camera import CameraFleet, CanaryCamera, PushTarget
from canarywatch.incidents.pagerduty import EVENTS_URL, MemoryOutbox, Outbox, PagerDutyClient
from canarywatch.markers import Decoder, Keyring
from canarywatch.metrics import Metrics, serve_metrics
from canarywatch.monitor import Monitor
from canarywatch.serving import ServedApp
from canarywatch.shutdown import KillSwitch
from canarywatch.standalone.config import StandaloneConfig
from canarywatch.viewer.judging import StreamJudge, ViewerStream
from canarywatch.viewer.loop import judge_frames
from canarywatch.viewer.network import NetworkProfile, Shaper
from canarywatch.viewer.transports import (
    AuthzProber,
    EventFeedReader,
    MjpegReader,
    ReceivedFrame,
    SnapshotPoller,
    viewer_session,
)

__all__ = ["Pipeline", "RunResult"]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    summary: dict[str, Any]
    monitor: Monitor
    metrics: Metrics


@dataclass
class _Stream:
    stream: ViewerStream
    frames: AsyncIterator[ReceivedFrame]
    session: aiohttp.ClientSession
    errors: Callable[[], int] = field(default=lambda: 0)


_MEASURE_WAIT_S = 10.0


async def _after_first_measurement(
    shaper: Shaper, frames: AsyncIterator[ReceivedFrame]
) -> AsyncIterator[ReceivedFrame]:
    """Open a stream only once the hub has measured its link (bounded wait)."""
    deadline = time.monotonic() + _MEASURE_WAIT_S
    while shaper.estimate.rtt_s is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    async for frame in frames:
        yield frame


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
        self.routing_key = routing_key or (pd.routing_key.resolve() if pd else None)
        self.pagerduty_url = pagerduty_url or (pd.url if pd and pd.url else EVENTS_URL)
        self.metrics_url: str | None = None
        self.streams: list[_Stream] = []
        self.fleet: CameraFleet | None = None
        self.camera_server_url: str | None = None
        self.monitor: Monitor | None = None

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

    def _viewer_streams(self, tokens: dict[str, str]) -> list[_Stream]:
        cfg = self.config
        viewer, probe = cfg.integration.viewer, cfg.probe
        interval = viewer.poll_interval
        streams: list[_Stream] = []

        # One shaper per (tenant, profile): a hub has one link and one estimate of it,
        # shared by all its streams, so a long-lived MJPEG stream asks for the variant
        # its link can carry (the snapshots it polls measure the link first).
        shapers: dict[tuple[str, str], Shaper] = {}

        def add(tenant: str, camera: int | None, kind: str, profile: NetworkProfile, build: Any) -> None:
            session = viewer_session(kind)
            shaper = shapers.setdefault((tenant, profile.name), Shaper(profile))
            transport = build(session, shaper)
            stream = ViewerStream(cfg.integration.name, probe.name, tenant, camera, kind, profile.name)
            frames = transport.frames()
            if kind == "mjpeg" and profile.shapes_anything:
                frames = _after_first_measurement(shaper, frames)
            streams.append(_Stream(stream, frames, session, lambda: transport.errors))

        for t in probe.tenants:
            token = tokens[t.id]
            for profile in probe.network_profiles:
                for c in range(probe.cameras_per_tenant):
                    if viewer.snapshot is not None:
                        req = viewer.snapshot.render(tenant=t.id, camera=str(c), token=token)
                        add(
                            t.id,
                            c,
                            "snapshot",
                            profile,
                            lambda s, sh, r=req: SnapshotPoller(s, r, interval_s=interval, shaper=sh),
                        )
                    if viewer.mjpeg is not None:
                        req = viewer.mjpeg.render(tenant=t.id, camera=str(c), token=token)
                        add(t.id, c, "mjpeg", profile, lambda s, sh, r=req: MjpegReader(s, r, shaper=sh))
                if viewer.events is not None:
                    req = viewer.events.render(tenant=t.id, camera="", token=token)
                    add(
                        t.id,
                        None,
                        "thumbnail",
                        profile,
                        lambda s, sh, r=req: EventFeedReader(s, r, interval_s=interval, shaper=sh),
                    )
            if viewer.authz_probe is not None and len(probe.tenants) > 1:
                # ask for every *other* tenant's cameras with this tenant's own token
                targets = [
                    viewer.authz_probe.render(tenant=other.id, camera=str(c), token=token)
                    for other in probe.tenants
                    if other.id != t.id
                    for c in range(probe.cameras_per_tenant)
                ]
                add(
                    t.id,
                    None,
                    "probe",
                    probe.network_profiles[0],
                    lambda s, sh, r=targets: AuthzProber(s, r, interval_s=max(interval, 1.0), shaper=sh),
                )
        return streams

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
            self.metrics.prime(
                integration=integration.name, probe=cfg.probe.name, tenants=[t.id for t in cfg.probe.tenants]
            )
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
                    on_action=self.metrics.killswitch_hook(integration=integration.name),
                )
            monitor = self.monitor = Monitor(
                integration=integration.name,
                probe=cfg.probe.name,
                policy=integration.policy,
                metrics=self.metrics,
                pagerduty=pagerduty,
                routing_key=self.routing_key,
                kill_switch=kill_switch,
                out_dir=self.out_dir,
                on_event=self.on_event,
                clock=self.clock,
            )
            fleet = self.fleet = CameraFleet(self._cameras(), fps=cfg.probe.fps, clock=self.clock)
            tasks: list[asyncio.Task[Any]] = []
            if integration.camera.push is not None:
                tasks.append(asyncio.create_task(fleet.run_push(self._push_targets(tokens))))
            else:
                camera_server = await ServedApp.start(
                    fleet.app(), integration.camera.serve_host, integration.camera.serve_port or 0
                )
                servers.push_async_callback(camera_server.stop)
                self.camera_server_url = camera_server.base_url
                tasks.append(asyncio.create_task(fleet.run_render()))
            decoder = Decoder(self.keyring)
            self.streams = self._viewer_streams(tokens)
            if pagerduty is not None:
                tasks.append(asyncio.create_task(pagerduty.run()))
            for s in self.streams:
                judge = StreamJudge(
                    decoder,
                    s.stream,
                    max_age=None if s.stream.kind == "thumbnail" else cfg.probe.freshness_seconds,
                    clock=self.clock,
                )
                tasks.append(asyncio.create_task(self._view(s, judge, monitor)))
            started = time.monotonic()
            try:
                await self._wait(started, duration, linger_after_shutdown, monitor)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await monitor.drain(timeout=15.0)
                if pagerduty is not None:
                    with contextlib.suppress(Exception):
                        await pagerduty.flush()
                    await pagerduty.close()
                for s in self.streams:
                    await s.session.close()
        summary = self._summary(monitor, time.monotonic() - started)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            monitor.incidents.flush()
        return RunResult(summary, monitor, self.metrics)

    async def _wait(
        self, started: float, duration: float | None, linger: float | None, monitor: Monitor
    ) -> None:
        switched_off_at: float | None = None
        while duration is None or time.monotonic() - started < duration:
            await asyncio.sleep(0.1)
            if monitor.suspended and switched_off_at is None:
                switched_off_at = time.monotonic()
            if (
                switched_off_at is not None
                and linger is not None
                and time.monotonic() - switched_off_at >= linger
            ):
                return

    async def _view(self, s: _Stream, judge: StreamJudge, monitor: Monitor) -> None:
        await judge_frames(s.frames, judge, metrics=self.metrics, handle=monitor.handle)

    def _summary(self, monitor: Monitor, elapsed: float) -> dict[str, Any]:
        summary = monitor.summary()
        summary["duration_seconds"] = round(elapsed, 3)
        summary["streams"] = len(self.streams)
        summary["viewer_network_errors"] = sum(s.errors() for s in self.streams)
        if self.fleet is not None:
            summary["cameras"] = {
                "count": len(self.fleet.cameras),
                "frames_published": sum(c.published for c in self.fleet.cameras),
                "publish_failures": sum(c.failed for c in self.fleet.cameras),
            }
        summary["incident_records"] = [r.to_dict() for r in monitor.incidents.records()]
        return summary
