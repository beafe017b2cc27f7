"""The reference relay as an aiohttp application: routes and lifecycle.

Handlers (``web_devices``, ``web_events``, ``web_admin``) authenticate, parse and
format through ``web_gates``; every decision a viewer could notice is made in
``service`` and ``faults``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from canarywatch.relay.config import RelayConfig
from canarywatch.relay.pull import pulling
from canarywatch.relay.rtsp import serving_rtsp
from canarywatch.relay.service import Relay
from canarywatch.relay.web_admin import (
    admin_fault,
    admin_kill,
    admin_outage,
    admin_resume,
    admin_state,
    healthz,
)
from canarywatch.relay.web_devices import DEVICE_PATH, push_frame, push_stream, snapshot, stream
from canarywatch.relay.web_events import list_events, thumbnail
from canarywatch.relay.web_gates import RELAY_KEY, json_errors
from canarywatch.relay.web_streams import video_routes
from canarywatch.relay.whep import add_whep

__all__ = ["RELAY_KEY", "build_app"]

# Admin bodies are tiny, but the request size cap is app-wide; never let a small
# max_frame_bytes make `{"reason": ...}` unpostable.
_MIN_REQUEST_BYTES = 64 * 1024


def build_app(config: RelayConfig, *, clock: Callable[[], float] | None = None) -> web.Application:
    """The relay as an aiohttp application; ``clock`` (unix seconds) is for tests."""
    app = web.Application(
        client_max_size=max(config.max_frame_bytes, _MIN_REQUEST_BYTES),
        middlewares=[json_errors],
    )
    app[RELAY_KEY] = Relay(config, clock=clock or time.time)
    app.add_routes(
        [
            web.put(f"{DEVICE_PATH}/frame", push_frame),
            web.post(f"{DEVICE_PATH}/frame", push_frame),
            web.post(f"{DEVICE_PATH}/stream", push_stream),
            web.get(f"{DEVICE_PATH}/live.jpg", snapshot, allow_head=False),
            web.get(f"{DEVICE_PATH}/stream.mjpg", stream, allow_head=False),
            web.get("/v3/events", list_events, allow_head=False),
            web.get(r"/v3/events/{event_id:\d{1,18}}/thumbnail.jpg", thumbnail, allow_head=False),
            web.post("/v3/admin/kill", admin_kill),
            web.post("/v3/admin/resume", admin_resume),
            web.get("/v3/admin/state", admin_state, allow_head=False),
            web.put("/v3/admin/fault", admin_fault),
            web.post("/v3/admin/outage", admin_outage),
            web.get("/healthz", healthz),
            *video_routes(),
        ]
    )
    app.cleanup_ctx.append(_pull_sources)
    app.cleanup_ctx.append(_rtsp_server)
    app.on_shutdown.append(_close_streams)
    add_whep(app)
    return app


async def _pull_sources(app: web.Application) -> AsyncIterator[None]:
    async with pulling(app[RELAY_KEY]):
        yield


async def _rtsp_server(app: web.Application) -> AsyncIterator[None]:
    relay = app[RELAY_KEY]
    if relay.config.rtsp_port is None:
        yield
        return
    async with serving_rtsp(relay, host=relay.config.rtsp_host, port=relay.config.rtsp_port) as server:
        relay.rtsp_url = server.base_url
        yield


async def _close_streams(app: web.Application) -> None:
    # Runs before aiohttp waits for open connections: ending the MJPEG loops here is
    # what lets shutdown finish at once instead of after the shutdown timeout.
    app[RELAY_KEY].close()
