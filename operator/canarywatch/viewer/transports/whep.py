"""``WhepReader``: watch a WebRTC stream over WHEP, as a browser-based hub player does.

The SDP offer (receive-only video) is POSTed through the hub's shaper with the request's
headers (``Authorization: Bearer {token}``); the ``201`` answer's SDP sets up ICE, DTLS
and SRTP (aiortc, ``canarywatch.webrtc``) and the track's frames arrive decoded. A
WebRTC receiver decodes every frame (each depends on the previous one), so the cost
bounded here is the rest: only frames ``Sampling.min_interval_s`` apart (wall clock) are
converted and judged, keyframes only if ``keyframes_only``; the reading task keeps
draining the track so a judged frame is the newest one, not a backlog.

The media travels over UDP outside the HTTP shaper (as RTSP's does; the ``tc`` shaper
shapes it like any traffic of the pod). Refusals (401/403/404, any answer other than
200/201) are yielded as empty frames with that status; an answer that is not SDP or
shares no codec with the viewer as an empty 200 frame with
``meta["problem"] == "undecodable_video"``. Leaving, the session's ``Location`` is
DELETEd (same origin only: it carries the credential).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from canarywatch.tasks import reap
from canarywatch.viewer.transports.base import NETWORK_ERRORS, FrameKind, ReceivedFrame
from canarywatch.viewer.transports.live import LiveVideoReader
from canarywatch.viewer.transports.video import DecodedFrame, Sampling, UndecodableVideo, convert_frame
from canarywatch.webrtc import (
    MAX_SDP_BYTES,
    SDP_CONTENT_TYPE,
    SignalingError,
    close_peer,
    looks_like_sdp,
    negotiated_codec,
    peer_connection,
    session_url,
)

if TYPE_CHECKING:
    from aiortc import MediaStreamTrack, RTCPeerConnection
    from av import VideoFrame

__all__ = ["WHEP_SAMPLING", "WhepReader"]

#: Two judged frames a second of a live stream (every frame is decoded anyway).
WHEP_SAMPLING = Sampling(keyframes_only=False, min_interval_s=0.5)
# Sampled frames waiting to be converted; beyond this the oldest is dropped.
_QUEUE_FRAMES = 2
# A DELETE of a session being left is not worth a longer wait (a stopping viewer waits).
_LEAVE_TIMEOUT_S = 2.0
# Answers a WHEP server gives an offer it accepts (201 is the spec's; some say 200).
_ACCEPTED = (200, 201)


@dataclass(frozen=True)
class _Sampled:
    frame: VideoFrame
    received_at: float


class WhepReader(LiveVideoReader):
    """Watches one WHEP endpoint; yields sampled frames (kind ``whep``; meta ``pts``,
    ``codec``).

    Reconnects with backoff (reset by every frame) when the session ends, fails, or is
    silent for ``timeout_s`` (ICE that never connects included).
    """

    kind = FrameKind.WHEP

    default_sampling = WHEP_SAMPLING
    #: the status the latest offer was answered with (None: no answer, a network error).
    answer_status: int | None = None

    async def first_frames(
        self, *, max_frames: int = 1, within_s: float | None = None
    ) -> list[ReceivedFrame]:
        """One look: up to ``max_frames`` frames of one session (or the answer that
        stopped it), for at most ``within_s`` seconds (default: three timeouts)."""
        frames: list[ReceivedFrame] = []
        watch = self._connection()
        try:
            async with asyncio.timeout(within_s if within_s is not None else 3 * self.timeout_s):
                async for frame in watch:
                    frames.append(frame)
                    if len(frames) >= max_frames:
                        break
        except TimeoutError:
            pass  # what was seen so far is the look
        finally:
            await watch.aclose()
        return frames

    # -- one session: offer → answer → frames, until it ends ------------------------------

    async def _connection(self) -> AsyncGenerator[ReceivedFrame, None]:
        pc = peer_connection()
        location: str | None = None
        try:
            # Every codec aiortc decodes is offered (H.264, VP8); the server picks.
            pc.addTransceiver("video", direction="recvonly")
            track_ready: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

            @pc.on("track")
            def _on_track(track: MediaStreamTrack) -> None:
                if track.kind == "video" and not track_ready.done():
                    track_ready.set_result(track)

            await pc.setLocalDescription(await pc.createOffer())
            try:
                answer, location = await self._exchange(pc)
            except NETWORK_ERRORS as error:
                self._record_error(error, self.request.source)
                return
            if isinstance(answer, ReceivedFrame):
                yield answer
                return
            try:
                async with asyncio.timeout(self.timeout_s):
                    track = await track_ready
            except TimeoutError as error:
                self._record_error(error, self.request.source)
                return
            codec = negotiated_codec(pc.remoteDescription.sdp)
            async with contextlib.aclosing(self._track_frames(track, codec)) as frames:
                async for frame in frames:
                    yield frame
        finally:
            await self._leave(location)
            await close_peer(pc)

    async def _exchange(self, pc: RTCPeerConnection) -> tuple[ReceivedFrame | None, str | None]:
        """POST the offer, apply the answer: (a frame saying why not, or None; the
        session's URL to DELETE)."""
        from aiortc import RTCSessionDescription

        request = self.request
        headers = {name: value for name, value in request.headers.items() if name.lower() != "content-type"}
        headers["Content-Type"] = SDP_CONTENT_TYPE
        self.answer_status = None
        response = await self._fetch(
            "POST", request.url, headers=headers, body=pc.localDescription.sdp.encode()
        )
        self.answer_status = response.status
        if response.status not in _ACCEPTED or response.truncated:
            return self._answer(self.kind, response, source=request.source, success=False), None
        location = session_url(response.url or request.url, response.headers.get("Location"))
        try:
            if not looks_like_sdp(response.body) or len(response.body) > MAX_SDP_BYTES:
                raise SignalingError("the answer is not an SDP session description")
            answer = RTCSessionDescription(sdp=response.body.decode("utf-8", "replace"), type="answer")
            await pc.setRemoteDescription(answer)
        except (SignalingError, ValueError) as error:
            return self._undecodable(str(error) or type(error).__name__), location
        return None, location

    async def _track_frames(self, track: MediaStreamTrack, codec: str) -> AsyncGenerator[ReceivedFrame, None]:
        """The sampled frames of ``track`` (``codec``: the answer's), until it ends or is
        silent for ``timeout_s``."""
        queue: asyncio.Queue[_Sampled | None] = asyncio.Queue()
        reader = asyncio.create_task(self._read(track, queue), name=f"whep {self.request.source}")
        try:
            while True:
                try:
                    # not asyncio.wait_for: on Python 3.11 it swallows this task's
                    # cancellation when the item arrives in the same loop pass, and a
                    # viewer told to stop would go on watching (a run that never exits)
                    async with asyncio.timeout(self.timeout_s):
                        item = await queue.get()
                except TimeoutError as error:
                    self._record_error(error, self.request.source)
                    return
                if item is None:
                    self._record_error(ConnectionError("the WebRTC track ended"), self.request.source)
                    return
                pts_s = None if item.frame.time is None else float(item.frame.time)
                try:
                    decoded: DecodedFrame = await asyncio.to_thread(
                        convert_frame, item.frame, pts_s, self.sampling.max_width
                    )
                except UndecodableVideo as error:
                    yield self._undecodable(str(error))
                    continue
                yield ReceivedFrame(
                    body=decoded.image,
                    received_at=item.received_at,
                    kind=self.kind,
                    source=self.request.source,
                    status=200,
                    meta={"pts": "" if pts_s is None else f"{pts_s:.3f}", "codec": codec},
                )
        finally:
            await reap(reader)

    async def _read(self, track: MediaStreamTrack, queue: asyncio.Queue[_Sampled | None]) -> None:
        """Drain the track (aiortc queues every decoded frame); hand on the sampled ones,
        the newest kept when the judge is behind."""
        from aiortc.mediastreams import MediaStreamError
        from av import VideoFrame

        last: float | None = None
        interval = self.sampling.min_interval_s
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if not isinstance(frame, VideoFrame):
                    continue
                if self.sampling.keyframes_only and not frame.key_frame:
                    continue
                if last is not None and now - last < interval:
                    continue
                last = now
                while queue.qsize() >= _QUEUE_FRAMES:
                    queue.get_nowait()
                queue.put_nowait(_Sampled(frame, self._wall_clock()))
        except MediaStreamError:
            queue.put_nowait(None)

    async def _leave(self, location: str | None) -> None:
        """DELETE the session (best effort: the server also times it out)."""
        if location is None or self._session.closed:
            return
        with contextlib.suppress(*NETWORK_ERRORS):
            async with asyncio.timeout(_LEAVE_TIMEOUT_S):
                await self._fetch("DELETE", location, headers=self.request.headers)

    def _undecodable(self, reason: str) -> ReceivedFrame:
        meta = {"problem": "undecodable_video", "undecodable": reason[:200]}
        return ReceivedFrame(b"", self._wall_clock(), self.kind, self.request.source, 200, meta)
