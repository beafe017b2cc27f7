"""Many canary cameras in one process: render signed frames at a rate, publish them.

Publishing is *push* (HTTP PUT/POST of each JPEG to the integration's ingest URL, like
a camera uploading), a long MJPEG POST (one upload held open, a JPEG per part), or
*serve* (the integration pulls snapshots or MJPEG from us, like a camera with a local
web server); H.264 over RTSP/RTMP is ``camera.video``. Memory is bounded: a camera keeps only
its latest encoded frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from canarywatch.httpclient import client_session
from canarywatch.markers import FrameRenderer, FrameSpec
from canarywatch.retrying import Backoff

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CameraFleet", "CanaryCamera", "PushTarget"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushTarget:
    """Where and how one camera uploads its frames."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # carries tokens


@dataclass
class CanaryCamera:
    """One synthetic camera of one synthetic tenant."""

    tenant: str
    camera: int
    key: bytes = field(repr=False)
    width: int = 640
    height: int = 360
    quality: int = 80
    seq: int = 0
    latest: bytes = b""
    latest_time: float = 0.0
    published: int = 0
    failed: int = 0
    last_status: int | None = None
    _renderer: FrameRenderer | None = field(default=None, init=False, repr=False, compare=False)

    def next_picture(self, now: float) -> np.ndarray:
        """Render the next frame's pixels (BGR; seq increments), for video encoders."""
        self.seq += 1
        spec = FrameSpec(self.tenant, self.camera, self.seq, now, self.width, self.height)
        return self._sized_renderer().render(spec, self.key)

    def _sized_renderer(self) -> FrameRenderer:
        """The renderer of this camera at its current size."""
        renderer = self._renderer
        if (
            renderer is None
            or renderer.geometry.width != self.width
            or renderer.geometry.height != self.height
        ):
            # the static parts of this camera's frames, drawn once (not per frame)
            renderer = self._renderer = FrameRenderer(self.tenant, self.camera, self.width, self.height)
        return renderer

    def next_frame(self, now: float) -> bytes:
        """Render and encode the next frame (seq increments), keep it as `latest`:
        ``encode_image(..., restart_rows=True)`` of it, its fixed rows encoded once."""
        picture = self.next_picture(now)
        self.latest = self._sized_renderer().encode(picture, self.quality)
        self.latest_time = now
        return self.latest


class CameraFleet:
    """Runs every camera's frame loop; push mode uploads, serve mode answers pulls."""

    def __init__(
        self,
        cameras: Sequence[CanaryCamera],
        *,
        fps: float,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 5.0,
    ) -> None:
        if fps <= 0:
            raise ValueError("fps must be positive")
        self.cameras = list(cameras)
        self.fps = fps
        self.clock = clock
        self.timeout_s = timeout_s
        self._by_key = {(c.tenant, str(c.camera)): c for c in self.cameras}
        self._new_frame = asyncio.Event()

    def camera(self, tenant: str, camera: str) -> CanaryCamera | None:
        return self._by_key.get((tenant, camera))

    async def run_push(self, targets: Mapping[tuple[str, int], PushTarget]) -> None:
        """Upload every camera's frames until cancelled; failures are counted, not raised."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with client_session(timeout=timeout) as session:
            loops = [
                self._push_loop(session, cam, targets[(cam.tenant, cam.camera)], i)
                for i, cam in enumerate(self.cameras)
            ]
            await asyncio.gather(*loops)

    async def run_mjpeg_post(self, targets: Mapping[tuple[str, int], PushTarget]) -> None:
        """Hold one long ``multipart/x-mixed-replace`` upload open per camera, a JPEG per
        part, reconnecting (with backoff) when the integration ends or refuses it."""
        # No total timeout: the upload is meant to last; connecting still has one.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s)
        async with client_session(timeout=timeout) as session:
            loops = [
                self._mjpeg_post_loop(session, cam, targets[(cam.tenant, cam.camera)], i)
                for i, cam in enumerate(self.cameras)
            ]
            await asyncio.gather(*loops)

    async def _mjpeg_post_loop(
        self, session: aiohttp.ClientSession, cam: CanaryCamera, target: PushTarget, index: int
    ) -> None:
        await self._tick(index)
        headers = {**target.headers, "Content-Type": f"multipart/x-mixed-replace; boundary={_BOUNDARY}"}
        backoff = Backoff(base=0.5, cap=10.0)
        failures = 0
        while True:
            sent_before = cam.published
            try:
                async with session.request(
                    target.method, target.url, data=self._mjpeg_parts(cam), headers=headers
                ) as resp:
                    await resp.read()
                    cam.last_status = resp.status
                    if not 200 <= resp.status < 300:
                        cam.failed += 1
            except (aiohttp.ClientError, TimeoutError) as e:
                cam.failed += 1
                cam.last_status = None
                log.debug("camera %s/%s MJPEG upload ended: %s", cam.tenant, cam.camera, type(e).__name__)
            failures = 0 if cam.published > sent_before else failures + 1
            await asyncio.sleep(backoff.delay(max(1, failures)))

    async def _mjpeg_parts(self, cam: CanaryCamera) -> AsyncIterator[bytes]:
        interval = 1.0 / self.fps
        while True:
            started = time.monotonic()
            body = cam.next_frame(self.clock())
            yield _mjpeg_part(body)
            # counted once handed to the connection: the integration answers only at the end
            cam.published += 1
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def run_render(self) -> None:
        """Serve mode: keep `latest` fresh for pulls and MJPEG until cancelled."""
        await asyncio.gather(*(self._render_loop(cam, i) for i, cam in enumerate(self.cameras)))

    async def _tick(self, index: int) -> None:
        # spread cameras over the frame interval so uploads do not arrive in bursts
        await asyncio.sleep((index % 16) / 16 / self.fps)

    async def _render_loop(self, cam: CanaryCamera, index: int) -> None:
        await self._tick(index)
        interval = 1.0 / self.fps
        while True:
            started = time.monotonic()
            cam.next_frame(self.clock())
            self._new_frame.set()
            self._new_frame = asyncio.Event()
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def _push_loop(
        self, session: aiohttp.ClientSession, cam: CanaryCamera, target: PushTarget, index: int
    ) -> None:
        await self._tick(index)
        interval = 1.0 / self.fps
        headers = {"Content-Type": "image/jpeg", **target.headers}
        while True:
            started = time.monotonic()
            body = cam.next_frame(self.clock())
            try:
                async with session.request(target.method, target.url, data=body, headers=headers) as resp:
                    await resp.read()
                    cam.last_status = resp.status
                    if 200 <= resp.status < 300:
                        cam.published += 1
                    else:
                        cam.failed += 1
            except (aiohttp.ClientError, TimeoutError) as e:
                cam.failed += 1
                cam.last_status = None
                log.debug("camera %s/%s push failed: %s", cam.tenant, cam.camera, type(e).__name__)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    # -- serve mode ------------------------------------------------------------------
    def app(self) -> web.Application:
        """`GET /cameras/{tenant}/{camera}/snapshot.jpg` and `/stream.mjpg`."""
        app = web.Application()
        app.router.add_get("/cameras/{tenant}/{camera}/snapshot.jpg", self._snapshot)
        app.router.add_get("/cameras/{tenant}/{camera}/stream.mjpg", self._mjpeg)
        app.router.add_get("/healthz", _healthz)
        return app

    def _lookup(self, request: web.Request) -> CanaryCamera:
        cam = self.camera(request.match_info["tenant"], request.match_info["camera"])
        if cam is None or not cam.latest:
            raise web.HTTPNotFound(text="no such camera or no frame yet")
        return cam

    async def _snapshot(self, request: web.Request) -> web.Response:
        cam = self._lookup(request)
        cam.published += 1
        return web.Response(body=cam.latest, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _mjpeg(self, request: web.Request) -> web.StreamResponse:
        cam = self._lookup(request)
        resp = web.StreamResponse(
            headers={"Content-Type": f"multipart/x-mixed-replace; boundary={_BOUNDARY}"}
        )
        await resp.prepare(request)
        last = -1
        with contextlib.suppress(ConnectionResetError):
            while True:
                if cam.seq != last:
                    last = cam.seq
                    await resp.write(_mjpeg_part(cam.latest))
                    cam.published += 1
                await self._new_frame.wait()
        return resp


_BOUNDARY = "canarywatchframe"


def _mjpeg_part(jpeg: bytes) -> bytes:
    head = f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode() + jpeg + b"\r\n"


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")
