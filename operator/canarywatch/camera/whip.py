"""A canary camera that publishes H.264 over WebRTC with WHIP (RFC 9725).

Imports aiortc and PyAV: ``camera.streams`` imports this module only for a ``whip``
camera.

Browser-era cameras and encoders push WebRTC to the vendor's media server: an SDP offer
POSTed to the WHIP endpoint with the tenant's credential (``Authorization: Bearer``),
the ``201`` answer's SDP, then ICE, DTLS and SRTP (aiortc, ``canarywatch.webrtc``).

The camera encodes its own frames (libx264, the same live settings as the RTSP/RTMP
cameras: ``video.live_h264_options``, the configured bitrate and keyframe interval) and
hands aiortc the encoded packets, which it only packetizes: aiortc's own encoder would
pick its bitrate from congestion feedback and its keyframes from the viewers' requests,
and a canary's stream must be the one configured. A session that fails (refused, ICE
that does not connect, the server gone) is counted on the camera (``failed``,
``last_status``) and retried with backoff; frames sent count as ``published``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import av
from aiortc import MediaStreamTrack

from canarywatch.camera.fleet import CanaryCamera
from canarywatch.camera.publishing import EncodedTarget, StreamPublisher
from canarywatch.camera.video import live_h264_options
from canarywatch.retrying import Backoff
from canarywatch.webrtc import (
    SDP_CONTENT_TYPE,
    SignalingError,
    close_peer,
    looks_like_sdp,
    only_codec,
    peer_connection,
    session_url,
)

if TYPE_CHECKING:
    from aiortc import RTCPeerConnection

__all__ = ["CameraTrack", "WhipPublisher", "WhipTarget"]


# RTP's video clock.
_TIME_BASE = Fraction(1, 90_000)
# How long an offer may wait for its answer, and ICE and DTLS for a connection.
_CONNECT_TIMEOUT_S = 10.0


class PublishRefused(Exception):
    """The WHIP endpoint answered the offer with something other than an SDP answer."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the WHIP endpoint answered {status}")
        self.status = status


@dataclass(frozen=True)
class WhipTarget(EncodedTarget):
    """Where and how one camera publishes (``headers`` carry its tenant's token)."""

    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError("a whip camera needs an http(s) URL")


class WhipPublisher(StreamPublisher):
    """Publishes one camera over WHIP until cancelled (``session``: the HTTP session the
    offers go through)."""

    target: WhipTarget

    def __init__(
        self,
        camera: CanaryCamera,
        target: WhipTarget,
        *,
        session: aiohttp.ClientSession,
        fps: float,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(camera, target, fps=fps, clock=clock, backoff=backoff)
        self.session = session

    async def run(self) -> None:
        while True:
            self.sessions += 1
            track = CameraTrack(
                self.camera,
                fps=self.fps,
                keyframe_interval=self.target.keyframe_interval,
                bitrate=self.target.bitrate,
                clock=self.clock,
            )
            try:
                await self._session(track)
            except (
                PublishRefused,
                SignalingError,
                ValueError,
                TimeoutError,
                ConnectionError,
                aiohttp.ClientError,
            ) as error:
                self.session_failed(error, status=error.status if isinstance(error, PublishRefused) else None)
            finally:
                track.stop()
            await asyncio.sleep(self.next_delay(track.sent))

    async def _session(self, track: CameraTrack) -> None:
        """One WHIP session: until the connection fails or closes."""
        from aiortc import RTCSessionDescription

        pc = peer_connection()
        location: str | None = None
        ended = asyncio.Event()
        try:
            only_codec(pc.addTransceiver(track, direction="sendonly"), "video/H264")

            @pc.on("connectionstatechange")
            def _on_state() -> None:
                if pc.connectionState in ("failed", "closed"):
                    ended.set()

            await pc.setLocalDescription(await pc.createOffer())
            answer, location = await self._offer(pc)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                while pc.connectionState != "connected" and not ended.is_set():
                    await asyncio.sleep(0.05)
            if ended.is_set():
                raise ConnectionError("ICE or DTLS did not connect")
            await ended.wait()
            raise ConnectionError(f"the WebRTC connection went {pc.connectionState}")
        finally:
            await self._leave(location)
            await close_peer(pc)

    async def _offer(self, pc: RTCPeerConnection) -> tuple[str, str | None]:
        headers = {**self.target.headers, "Content-Type": SDP_CONTENT_TYPE}
        timeout = aiohttp.ClientTimeout(total=_CONNECT_TIMEOUT_S)
        async with self.session.post(
            self.target.url, data=pc.localDescription.sdp.encode(), headers=headers, timeout=timeout
        ) as response:
            body = await response.content.read(64 * 1024)
            if response.status not in (200, 201):
                raise PublishRefused(response.status)
            if not looks_like_sdp(body):
                raise SignalingError("the WHIP answer is not an SDP session description")
            self.camera.last_status = response.status
            return body.decode("utf-8", "replace"), session_url(
                str(response.url), response.headers.get("Location")
            )

    async def _leave(self, location: str | None) -> None:
        if location is None or self.session.closed:
            return
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ConnectionError):
            timeout = aiohttp.ClientTimeout(total=2.0)
            async with self.session.delete(location, headers=dict(self.target.headers), timeout=timeout):
                pass


class CameraTrack(MediaStreamTrack):
    """A camera's frames as live H.264 packets, paced at ``fps``, for any aiortc peer
    connection to send (aiortc pulls them and only packetizes)."""

    kind = "video"

    def __init__(
        self,
        camera: CanaryCamera,
        *,
        fps: float,
        keyframe_interval: float = 2.0,
        bitrate: int = 1_000_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.camera = camera
        self.fps = fps
        self.keyframe_interval = keyframe_interval
        self.bitrate = bitrate
        self.clock = clock
        #: frames handed to aiortc so far.
        self.sent = 0
        self._codec: Any = None
        self._started: float | None = None
        self._next_tick = 0.0

    async def recv(self) -> av.Packet[Any]:
        while True:
            now = time.monotonic()
            if self._started is None:
                self._started = self._next_tick = now
            await asyncio.sleep(max(0.0, self._next_tick - now))
            self._next_tick = max(self._next_tick + 1.0 / self.fps, time.monotonic())
            packet = await asyncio.to_thread(self._encoded_frame)
            if packet is not None:
                self.sent += 1
                self.camera.published += 1
                return packet

    def _encoded_frame(self) -> av.Packet[Any] | None:
        """Render and encode the next frame: its packet (None while the encoder fills)."""
        camera = self.camera
        width, height = camera.width - camera.width % 2, camera.height - camera.height % 2
        if self._codec is None:
            codec = av.CodecContext.create("libx264", "w")
            codec.width, codec.height = width, height
            codec.pix_fmt = "yuv420p"
            codec.bit_rate = self.bitrate
            codec.time_base = _TIME_BASE
            codec.framerate = Fraction(round(self.fps) or 1, 1)
            # Constrained Baseline: what every WebRTC H.264 endpoint decodes.
            codec.profile = "Baseline"
            codec.options = live_h264_options(self.fps, self.keyframe_interval)
            self._codec = codec
        assert self._started is not None
        picture = camera.next_picture(self.clock())
        frame = av.VideoFrame.from_ndarray(picture[:height, :width], format="bgr24")
        frame.pts = round((time.monotonic() - self._started) / _TIME_BASE)
        frame.time_base = _TIME_BASE
        data = b"".join(bytes(p) for p in self._codec.encode(frame))
        if not data:
            return None
        packet = av.Packet(data)
        packet.pts, packet.time_base = frame.pts, _TIME_BASE
        return packet
