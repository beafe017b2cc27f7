"""WebRTC over WHEP: each camera's live frames as a video track, to its owner's token.

``POST …/devices/{tenant}/{camera}/whep`` with an SDP offer (``Authorization: Bearer``,
checked like the MJPEG stream's) is answered ``201`` with aiortc's SDP answer and a
``Location`` (``…/whep/<session>``) that the viewer DELETEs when it leaves. The track
sends the camera's newest frame as it arrives (the same live frames as
``stream.mjpg``, in the rendition the offer's client hints ask for), each decoded from
its JPEG and encoded by aiortc (H.264 or VP8, as negotiated). A kill switch or an
outage ends every session at once (the track ends; the viewer sees it), as it cuts
MJPEG streams; shutdown closes them all.

aiortc is imported by the first offer: a relay nobody watches over WebRTC never loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import secrets
import time
from typing import TYPE_CHECKING, Any

from aiohttp import hdrs, web

from canarywatch.relay.hints import Quality, QualityRequestError, choose_variant
from canarywatch.relay.imaging import TranscodeError, decode_jpeg
from canarywatch.relay.web_devices import DEVICE_PATH
from canarywatch.relay.web_gates import RELAY_KEY, ApiError, admit_tenant

if TYPE_CHECKING:
    from aiortc import RTCPeerConnection

    from canarywatch.relay.service import Relay

__all__ = ["add_whep"]

_SESSIONS: web.AppKey[dict[str, RTCPeerConnection]] = web.AppKey("whep_sessions", dict)
_MAX_OFFER_BYTES = 64 * 1024
# How long a track waits for a camera's next frame before it looks at the switch again.
_IDLE_CHECK_S = 1.0
_TIME_BASE = fractions.Fraction(1, 90_000)


def add_whep(app: web.Application) -> None:
    """The WHEP routes, their session table, and its closing on shutdown."""
    app[_SESSIONS] = {}
    app.router.add_post(f"{DEVICE_PATH}/whep", offer)
    app.router.add_delete(f"{DEVICE_PATH}/whep/{{session:[A-Za-z0-9_-]{{16,64}}}}", leave)
    app.on_shutdown.append(_close_sessions)


async def offer(request: web.Request) -> web.Response:
    relay = request.app[RELAY_KEY]
    tenant, camera = request.match_info["tenant"], request.match_info["camera"]
    admit_tenant(request, url_tenant=tenant)
    try:
        quality = choose_variant(request.headers, request.query.get("quality"))
    except QualityRequestError as error:
        raise ApiError(400, "bad_request", str(error)) from error
    if request.content_type != "application/sdp":
        raise ApiError(415, "bad_request", "a WHEP offer is application/sdp")
    sdp = (await request.content.read(_MAX_OFFER_BYTES + 1)).decode("utf-8", "replace")
    if len(sdp) > _MAX_OFFER_BYTES or not sdp.startswith("v=0"):
        raise ApiError(400, "bad_request", "the body is not an SDP offer")

    from aiortc import RTCSessionDescription

    from canarywatch.webrtc import peer_connection

    pc = peer_connection()
    track = _camera_track(relay, tenant, camera, quality)
    pc.addTransceiver(track, direction="sendonly")
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
    except ValueError as error:  # no media or codec in common, a malformed offer
        await pc.close()
        raise ApiError(400, "bad_request", f"the offer cannot be answered: {error}") from error
    session = secrets.token_urlsafe(24)
    sessions = request.app[_SESSIONS]
    sessions[session] = pc

    @pc.on("connectionstatechange")
    async def _closed() -> None:
        if pc.connectionState in ("failed", "closed"):
            sessions.pop(session, None)
            await pc.close()

    return web.Response(
        status=201,
        text=pc.localDescription.sdp,
        content_type="application/sdp",
        headers={hdrs.LOCATION: f"{request.path}/{session}", "Cache-Control": "no-store"},
    )


async def leave(request: web.Request) -> web.Response:
    admit_tenant(request, url_tenant=request.match_info["tenant"])
    pc = request.app[_SESSIONS].pop(request.match_info["session"], None)
    if pc is None:
        raise ApiError(404, "no_session", "no such WHEP session")
    await pc.close()
    return web.Response(status=200)


async def _close_sessions(app: web.Application) -> None:
    sessions = app[_SESSIONS]
    peers = list(sessions.values())
    sessions.clear()
    await asyncio.gather(*(pc.close() for pc in peers), return_exceptions=True)


def _camera_track(relay: Relay, tenant: str, camera: str, quality: Quality) -> Any:
    import av
    from aiortc import MediaStreamTrack
    from aiortc.mediastreams import MediaStreamError

    class CameraTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.sent_ingest_id = 0
            self.started = time.monotonic()

        async def recv(self) -> av.VideoFrame:
            while True:
                # re-checked for every frame: a kill switch must cut open sessions too
                if relay.closing or relay.refusal() is not None:
                    self.stop()
                    raise MediaStreamError
                frame = relay.frames.latest(tenant, camera)
                if frame is None or frame.ingest_id <= self.sent_ingest_id:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(_IDLE_CHECK_S):
                            await relay.frames.wait_for_publish(tenant, camera)
                    continue
                self.sent_ingest_id = frame.ingest_id
                try:
                    served = await relay.render(frame, quality)
                except TranscodeError:
                    continue  # counted by the relay; the next frame may be fine
                try:
                    picture = await asyncio.to_thread(decode_jpeg, served.jpeg)
                except TranscodeError:
                    continue
                height, width = picture.shape[0] & ~1, picture.shape[1] & ~1  # yuv420p wants even sides
                video = av.VideoFrame.from_ndarray(picture[:height, :width], format="bgr24")
                video.pts = round((time.monotonic() - self.started) / _TIME_BASE)
                video.time_base = _TIME_BASE
                relay.state.counters.stream_parts_served += 1
                return video

    return CameraTrack()
