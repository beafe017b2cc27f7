"""Device endpoints: camera push, viewer snapshot and MJPEG stream."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import NoReturn

from aiohttp import hdrs, web

from canarywatch.relay import faults
from canarywatch.relay.config import NAME_REGEX
from canarywatch.relay.hints import (
    CLIENT_HINT_HEADERS,
    Quality,
    QualityRequestError,
    choose_variant,
)
from canarywatch.relay.imaging import TranscodeError, looks_like_jpeg
from canarywatch.relay.service import Relay, Served
from canarywatch.relay.web_gates import RELAY_KEY, ApiError, admit_available, admit_tenant
from canarywatch.viewer.transports.multipart import MultipartParser, OversizedPart, boundary_from_content_type

__all__ = ["DEVICE_PATH", "push_frame", "push_stream", "snapshot", "stream"]

#: Route prefix of one camera; names outside the config's alphabet never route.
DEVICE_PATH = f"/v3/devices/{{tenant:{NAME_REGEX}}}/{{camera:{NAME_REGEX}}}"

_BOUNDARY = "canarywatch-frame"
_JPEG_CONTENT_TYPES = frozenset({"image/jpeg", "image/jpg", "application/octet-stream"})
_HINTS = ", ".join(CLIENT_HINT_HEADERS)
# How often an idle MJPEG stream checks that its viewer is still connected; aiohttp
# does not cancel handlers on disconnect, so a stream for a silent camera would
# otherwise hold its connection until shutdown.
_STREAM_IDLE_CHECK_SECONDS = 5.0


async def push_frame(request: web.Request) -> web.Response:
    """``PUT|POST …/frame``: a camera delivers one JPEG."""
    relay = request.app[RELAY_KEY]
    tenant, camera = request.match_info["tenant"], request.match_info["camera"]
    admit_tenant(request, url_tenant=tenant)
    limit = relay.config.max_frame_bytes
    if request.content_length is not None and request.content_length > limit:
        _reject_frame(relay, 413, f"frame of {request.content_length} bytes exceeds {limit}")
    if request.content_type not in _JPEG_CONTENT_TYPES:
        _reject_frame(relay, 415, f"expected image/jpeg, got {request.content_type}")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        _reject_frame(relay, 413, f"frame exceeds {limit} bytes")
    if len(body) > limit:
        _reject_frame(relay, 413, f"frame of {len(body)} bytes exceeds {limit}")
    if not looks_like_jpeg(body):
        _reject_frame(relay, 415, "body is not a JPEG image")
    frame = await relay.ingest(tenant, camera, body)
    return web.Response(status=204, headers={"X-Frame-Seq": str(frame.seq)})


async def push_stream(request: web.Request) -> web.Response:
    """``POST …/stream``: a camera holds one long ``multipart/x-mixed-replace`` upload
    open, one JPEG per part (how many IP cameras push MJPEG); each part is a frame."""
    relay = request.app[RELAY_KEY]
    tenant, camera = request.match_info["tenant"], request.match_info["camera"]
    admit_tenant(request, url_tenant=tenant)
    if request.content_type != "multipart/x-mixed-replace":
        _reject_frame(relay, 415, f"expected multipart/x-mixed-replace, got {request.content_type}")
    parser = MultipartParser(
        boundary_from_content_type(request.headers.get(hdrs.CONTENT_TYPE, "")),
        max_part_bytes=relay.config.max_frame_bytes,
    )
    accepted = 0
    async for chunk in request.content.iter_any():
        for part in parser.feed(chunk):
            # An oversized or non-JPEG part is rejected on its own; the stream goes on.
            if isinstance(part, OversizedPart) or not looks_like_jpeg(part.body):
                relay.state.counters.frames_rejected += 1
                continue
            if relay.refusal() is not None:
                admit_available(relay)  # a kill switch or outage ends the upload (503)
            await relay.ingest(tenant, camera, part.body)
            accepted += 1
        if parser.finished:
            break
    return web.Response(status=204, headers={"X-Frames-Accepted": str(accepted)})


def _reject_frame(relay: Relay, status: int, message: str) -> NoReturn:
    relay.state.counters.frames_rejected += 1
    code = "frame_too_large" if status == 413 else "unsupported_frame"
    raise ApiError(status, code, message)


async def snapshot(request: web.Request) -> web.Response:
    """``GET …/live.jpg``: the camera's current frame, through the snapshot cache."""
    relay = request.app[RELAY_KEY]
    tenant, camera = request.match_info["tenant"], request.match_info["camera"]
    checks_owner = faults.snapshot_checks_owner(relay.state.fault)
    admit_tenant(request, url_tenant=tenant if checks_owner else None)
    quality = _quality(request)
    frame = relay.snapshot_frame(tenant, camera)
    if frame is None:
        raise ApiError(404, "no_frame", f"camera {camera} has not sent a frame yet")
    try:
        served = await relay.render(frame, quality)
    except TranscodeError as error:
        raise ApiError(502, "transcode_failed", str(error)) from error
    relay.state.counters.snapshots_served += 1
    return web.Response(
        body=served.jpeg,
        content_type="image/jpeg",
        headers={**_viewer_headers(quality), "X-Frame-Seq": str(served.seq)},
    )


async def stream(request: web.Request) -> web.StreamResponse:
    """``GET …/stream.mjpg``: one part per new camera frame, until the viewer leaves
    or is cut off. Live frames, not the snapshot cache: streams and snapshots are
    separate paths, as in real relays, and a fault lives on one of them."""
    relay = request.app[RELAY_KEY]
    tenant, camera = request.match_info["tenant"], request.match_info["camera"]
    admit_tenant(request, url_tenant=tenant)
    quality = _quality(request)
    response = web.StreamResponse(
        headers={
            **_viewer_headers(quality),
            hdrs.CONTENT_TYPE: f"multipart/x-mixed-replace; boundary={_BOUNDARY}",
        }
    )
    await response.prepare(request)
    _bound_stream_buffers(request)
    sent_ingest_id = 0
    try:
        # Re-checked for every frame: a kill switch must cut open streams too.
        while not relay.closing and relay.refusal() is None:
            frame = relay.frames.latest(tenant, camera)
            if frame is None or frame.ingest_id <= sent_ingest_id:
                await _wait_for_frame(relay, tenant, camera)
                if request.transport is None or request.transport.is_closing():
                    break
                continue
            sent_ingest_id = frame.ingest_id
            try:
                served = await relay.render(frame, quality)
            except TranscodeError:
                continue  # counted by the relay; the next frame may be fine
            await response.write(_mjpeg_part(served))
            relay.state.counters.stream_parts_served += 1
        await response.write(f"--{_BOUNDARY}--\r\n".encode())
    except ConnectionError:  # reset, or aiohttp's "Connection lost" mid-write
        pass  # the viewer went away; nothing left to tell it
    return response


# A slow viewer must get fewer, *current* frames, not a queue of old ones: with the
# kernel's default (auto-tuned, megabytes) send buffer, a poor connection would
# see MJPEG frames seconds late while the loop above believes they were delivered.
_STREAM_SEND_BUFFER = 32 * 1024


def _bound_stream_buffers(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _STREAM_SEND_BUFFER)
    if isinstance(transport, asyncio.WriteTransport):
        transport.set_write_buffer_limits(high=_STREAM_SEND_BUFFER)


async def _wait_for_frame(relay: Relay, tenant: str, camera: str) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_STREAM_IDLE_CHECK_SECONDS):
            await relay.frames.wait_for_publish(tenant, camera)


def _mjpeg_part(served: Served) -> bytes:
    head = (
        f"--{_BOUNDARY}\r\n"
        "Content-Type: image/jpeg\r\n"
        f"Content-Length: {len(served.jpeg)}\r\n"
        f"X-Frame-Seq: {served.seq}\r\n\r\n"
    )
    return head.encode() + served.jpeg + b"\r\n"


def _quality(request: web.Request) -> Quality:
    try:
        return choose_variant(request.headers, request.query.get("quality"))
    except QualityRequestError as error:
        raise ApiError(400, "bad_request", str(error)) from error


def _viewer_headers(quality: Quality) -> dict[str, str]:
    return {
        "Cache-Control": "no-store",
        # The body depends on the client hints; say so, and ask clients to send them.
        "Vary": _HINTS,
        "Accept-CH": _HINTS,
        "X-Relay-Variant": str(quality),
    }
