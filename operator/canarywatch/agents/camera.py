"""``canarywatch camera``: a probe's canary cameras, every tenant's, in one pod.

Cameras ``0..CANARYWATCH_CAMERAS-1`` of each tenant of ``CANARYWATCH_TENANTS`` render
signed canary frames (each with its own tenant's key; each pushes with its own
tenant's token) at ``CANARYWATCH_FPS`` (``camera.CameraFleet``) and publish them the way the
integration takes them: pushed to its ingest URL, or served on
``/cameras/<tenant>/<camera>/snapshot.jpg`` and ``stream.mjpg`` for it to pull (behind
the probe's Service). ``/metrics`` and ``/healthz`` are on ``CANARYWATCH_METRICS_PORT``;
``/metrics`` has each camera's ``canarywatch_frames_published_total`` (the viewers count
what they saw; ``CanarywatchFramesNotDelivered`` compares the two), and the log a
periodic summary. The camera never talks to the Kubernetes API (its pod mounts no
ServiceAccount token).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from canarywatch.agents.env import (
    CameraSettings,
    EnvError,
    configure_logging,
    load_keyring,
    run_until_signalled,
)

if TYPE_CHECKING:
    from canarywatch.markers import Keyring
    from canarywatch.metrics import Metrics
    from canarywatch.serving import ServedApp

__all__ = ["CameraAgent", "main", "run_camera_agent"]

log = logging.getLogger(__name__)


class CameraAgent:
    """The camera pod's work; ``run(stop)`` until ``stop`` is set."""

    def __init__(self, settings: CameraSettings, *, keyring: Keyring, metrics: Metrics | None = None) -> None:
        # Imported here, once the environment is read: a bad one exits 2 before numpy,
        # the renderer and aiohttp are loaded.
        from canarywatch.camera import CameraFleet, CanaryCamera
        from canarywatch.metrics import Metrics

        self.settings = settings
        self.metrics = metrics or Metrics()
        self.fleet = CameraFleet(
            [
                CanaryCamera(
                    tenant, camera, keyring.key(tenant), width=settings.width, height=settings.height
                )
                for tenant in settings.tenants
                for camera in range(settings.cameras)
            ],
            fps=settings.fps,
        )
        # Labelled from the configuration (each camera's own tenant), as the viewers label
        # what they saw, so the two pods' series join.
        self.metrics.delivery.publish_cameras(
            integration=settings.integration, probe=settings.probe, cameras=lambda: self.fleet.cameras
        )
        self.metrics_url: str | None = None
        self.serve_url: str | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    def healthy(self) -> bool:
        """Alive while the frame loops run (a failing upload is counted, not fatal)."""
        return not any(task.done() for task in self._tasks)

    async def run(self, stop: asyncio.Event) -> None:
        from canarywatch.camera import PushTarget
        from canarywatch.camera.streams import publish_streams
        from canarywatch.metrics import serve_metrics
        from canarywatch.serving import ServedApp

        s = self.settings
        server = await serve_metrics(self.metrics, s.metrics_host, s.metrics_port, health=self.healthy)
        self.metrics_url = server.url
        fleet_server: ServedApp | None = None
        try:
            if s.push is not None:
                targets = {}
                for camera in self.fleet.cameras:
                    request = s.push.render(
                        tenant=camera.tenant, camera=str(camera.camera), token=s.token(camera.tenant)
                    )
                    targets[(camera.tenant, camera.camera)] = PushTarget(
                        request.method, request.url, dict(request.headers)
                    )
                self._tasks.append(asyncio.create_task(self.fleet.run_push(targets)))
                how = f"pushing to {s.push.template!r}"
            elif s.publish is not None and s.stream_endpoint is not None:
                streaming = publish_streams(
                    self.fleet, s.publish, token=s.token, render=s.stream_endpoint.render
                )
                self._tasks.append(asyncio.create_task(streaming))
                how = f"streaming {s.publish.protocol} to {s.publish.template!r}"
            else:
                fleet_server = await ServedApp.start(
                    self.fleet.app(), s.serve_host, s.serve_port, access_log=None
                )
                self.serve_url = fleet_server.base_url
                self._tasks.append(asyncio.create_task(self.fleet.run_render()))
                how = f"serving on {self.serve_url}"
            self._tasks.append(asyncio.create_task(self._summaries()))
            log.info(
                "camera %s: tenants %s, %d camera(s) at %g fps, %s; metrics on %s",
                s.pod_name,
                ", ".join(s.tenants),
                len(self.fleet.cameras),
                s.fps,
                how,
                server.url,
            )
            await stop.wait()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if fleet_server is not None:
                await fleet_server.stop()
            await server.stop()
            self._summary()

    async def _summaries(self) -> None:
        while True:
            await asyncio.sleep(self.settings.summary_seconds)
            self._summary()

    def _summary(self) -> None:
        cameras = self.fleet.cameras
        statuses = sorted({str(c.last_status) for c in cameras})
        log.info(
            "summary: frames published %d, failed %d; last status %s",
            sum(c.published for c in cameras),
            sum(c.failed for c in cameras),
            ", ".join(statuses),
        )


def run_camera_agent(environ: Mapping[str, str]) -> int:
    """Run the cameras until SIGTERM/SIGINT: 0 when stopped, 2 on bad configuration, 1 on failure."""
    try:
        settings = CameraSettings.from_environ(environ)
        keyring = load_keyring(settings.keyring_dir, require=settings.tenants)
    except EnvError as error:
        log.error("bad configuration: %s", error)
        return 2
    try:
        asyncio.run(run_until_signalled(CameraAgent(settings, keyring=keyring).run))
    except Exception:
        log.exception("camera failed")
        return 1
    return 0


def main() -> None:
    """``python -m canarywatch.agents.camera``: the cameras with this process's environment."""
    configure_logging(os.environ)
    sys.exit(run_camera_agent(os.environ))


if __name__ == "__main__":
    main()
