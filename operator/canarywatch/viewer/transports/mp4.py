"""``Mp4Reader``: watch an HTTP progressive MP4 as a smart display does (Google's
``CameraStream`` may answer ``progressive_mp4``).

One GET through the hub's shaper; what comes back decides how it is read:

- a **live stream** (no ``Content-Length``, or more than ``max_body_bytes``: a
  fragmented MP4 written as it is encoded, ``frag_keyframe+empty_moov``) is fed to
  FFmpeg as it arrives (``feed``: the loop reads the socket, a thread demuxes and
  decodes, both bounded), sampled frames judged as they come;
- a **file** (a ``Content-Length`` within ``max_body_bytes``) is read whole and decoded
  like an HLS segment, then fetched again after ``file_interval_s``.

Hostile input costs bounded memory and time and ends as a verdict, never a stall: a
stream that goes ``max_body_bytes`` or ``frame_timeout_s`` without a decodable frame
(an endless ``mdat`` whose ``moov`` never comes, a corrupt ``moov``, noise) is yielded
as an empty 200 frame with ``meta["problem"] == "undecodable_video"`` and reconnected
to with backoff. The request's headers go with the request only: a redirect to another
origin is followed without them (``canarywatch.httpclient``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Unpack

import aiohttp

from canarywatch.tasks import reap
from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.network.shaper import ShapedStream
from canarywatch.viewer.transports.base import (
    MAX_ERROR_BODY,
    NETWORK_ERRORS,
    FrameKind,
    ReceivedFrame,
    check_interval,
    header_meta,
    read_some,
)
from canarywatch.viewer.transports.feed import ByteFeed, decoded_in_thread
from canarywatch.viewer.transports.live import LiveVideoOptions, LiveVideoReader
from canarywatch.viewer.transports.video import (
    DEFAULT_SAMPLING,
    DecodedFrame,
    UndecodableVideo,
    decode_video,
    iter_frames,
)

__all__ = ["Mp4Reader"]

# FFmpeg probes a live input for one second, not its default five (the first verdict
# would wait for it); the MP4 demuxer only (a body that is not MP4 is undecodable).
_LIVE_OPTIONS = {"analyzeduration": "1000000", "probesize": "500000"}
_FORMAT = "mp4"


class _NoFrame(Exception):
    """The stream went past a bound without a decodable frame."""


class Mp4Reader(LiveVideoReader):
    """Watches one progressive MP4 URL; yields sampled frames (kind ``mp4``; meta
    ``pts`` and ``mp4`` = ``live`` or ``file``).

    Answers other than 200 are yielded as empty frames with their status (and JSON
    ``error`` code). ``frame_timeout_s`` (default three ``timeout_s``) bounds the wait
    for each next frame of a live stream, ``max_body_bytes`` the bytes read without
    one (and the size of a file read whole).
    """

    kind = FrameKind.MP4

    default_sampling = DEFAULT_SAMPLING

    def __init__(
        self,
        session: aiohttp.ClientSession,
        request: RenderedRequest,
        *,
        file_interval_s: float = 5.0,
        frame_timeout_s: float | None = None,
        **options: Unpack[LiveVideoOptions],
    ) -> None:
        super().__init__(session, request, **options)
        check_interval(file_interval_s, name="file_interval_s")
        self.frame_timeout_s = 3 * self.timeout_s if frame_timeout_s is None else frame_timeout_s
        check_interval(self.frame_timeout_s, name="frame_timeout_s")
        self.file_interval_s = file_interval_s
        #: answers that ended as an undecodable verdict (bounds included).
        self.undecodable = 0

    async def _connection(self) -> AsyncGenerator[ReceivedFrame, None]:
        try:
            async with self.shaper.stream(
                self._session,
                self.request.method,
                self.request.url,
                headers=self.request.headers,
                timeout=self.timeout_s,
            ) as stream:
                async for frame in self._answer_frames(stream):
                    yield frame
        except NETWORK_ERRORS as error:
            self._record_error(error, self.request.source)

    def _pause_after(self, last: ReceivedFrame) -> float | None:
        """A file read whole is fetched again after ``file_interval_s``."""
        return self.file_interval_s if last.meta.get("mp4") == "file" else None

    async def _answer_frames(self, stream: ShapedStream) -> AsyncIterator[ReceivedFrame]:
        if stream.status != 200:
            body = await read_some(stream, MAX_ERROR_BODY)
            yield self._frame(
                self.kind,
                source=self.request.source,
                status=stream.status,
                body=body,
                headers=stream.headers,
                success=False,
            )
            return
        meta = header_meta(stream.headers)
        meta.pop("content-type", None)
        length = stream.headers.get("Content-Length", "")
        if length.isdigit() and int(length) <= self.max_body_bytes:
            async for frame in self._file(stream, meta):
                yield frame
        else:
            async for frame in self._live(stream, meta, b""):
                yield frame

    async def _file(self, stream: ShapedStream, meta: dict[str, str]) -> AsyncIterator[ReceivedFrame]:
        body = await read_some(stream, self.max_body_bytes + 1)
        if len(body) > self.max_body_bytes:  # longer than it announced
            yield self._undecodable(f"file longer than its Content-Length (over {self.max_body_bytes} bytes)")
            return
        received_at = self._wall_clock()
        try:
            decoded = await asyncio.to_thread(
                decode_video, body, sampling=self.sampling, container_format=_FORMAT
            )
        except UndecodableVideo as error:
            yield self._undecodable(str(error))
            return
        for frame in decoded:
            yield self._decoded(frame, received_at, {**meta, "mp4": "file"})

    async def first_frames(
        self, stream: ShapedStream, prefix: bytes = b"", *, max_frames: int = 1
    ) -> list[ReceivedFrame]:
        """One look at a live stream another caller opened (the authorization probe), whose
        first ``prefix`` bytes it already read: its first frames, or the verdict that
        ended it. Network errors propagate."""
        meta = header_meta(stream.headers)
        meta.pop("content-type", None)
        frames: list[ReceivedFrame] = []
        live = self._live(stream, meta, prefix)
        try:
            async for frame in live:
                frames.append(frame)
                if len(frames) >= max_frames or not frame.body:
                    break
        finally:
            await live.aclose()
        return frames

    async def _live(
        self, stream: ShapedStream, meta: dict[str, str], prefix: bytes = b""
    ) -> AsyncGenerator[ReceivedFrame, None]:
        """Frames as FFmpeg decodes them from the stream, until it ends or a bound is hit."""
        feed = ByteFeed()
        since_frame = 0  # bytes fed since the last frame (or the start)
        over_budget = asyncio.Event()

        async def pump() -> None:
            nonlocal since_frame
            try:
                if prefix:
                    since_frame = len(prefix)
                    await feed.put(prefix)
                async for chunk in stream:
                    since_frame += len(chunk)
                    if since_frame > self.max_body_bytes:
                        over_budget.set()
                        return
                    await feed.put(chunk)
            finally:
                feed.end()

        def decode() -> Iterator[DecodedFrame]:
            return iter_frames(
                feed, sampling=self.sampling, container_format=_FORMAT, options=_LIVE_OPTIONS, limit=0
            )

        pumping = asyncio.create_task(pump())
        frames = decoded_in_thread(decode, name=f"mp4 {self.request.source}")
        try:
            while True:
                try:
                    frame = await self._next_frame(frames, over_budget)
                except StopAsyncIteration:
                    break
                except (_NoFrame, UndecodableVideo) as error:
                    _raise_network_error(pumping)  # a silent or broken connection is not a verdict
                    yield self._undecodable(str(error))
                    return
                since_frame = 0
                yield self._decoded(frame, self._wall_clock(), {**meta, "mp4": "live"})
            _raise_network_error(pumping)
        finally:
            feed.close()
            await reap(pumping)
            failed = None if pumping.cancelled() else pumping.exception()
            if failed is not None and not isinstance(failed, NETWORK_ERRORS):
                raise failed  # a bug in the pump, not the network
            await frames.aclose()

    async def _next_frame(
        self, frames: AsyncIterator[DecodedFrame], over_budget: asyncio.Event
    ) -> DecodedFrame:
        """The next frame, or ``_NoFrame`` when the stream passes a bound first."""
        frame = asyncio.ensure_future(anext(frames))
        budget = asyncio.ensure_future(over_budget.wait())
        try:
            await asyncio.wait(
                (frame, budget), timeout=self.frame_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            await reap(*(wait for wait in (frame, budget) if not wait.done()))
        if frame.done() and not frame.cancelled() and frame.exception() is None:
            return frame.result()
        if over_budget.is_set():
            raise _NoFrame(f"no decodable frame in {self.max_body_bytes} bytes")
        if frame.done() and not frame.cancelled():
            return frame.result()  # raises what ended the frames
        raise _NoFrame(f"no decodable frame in {self.frame_timeout_s:g} s")

    def _decoded(self, frame: DecodedFrame, received_at: float, meta: dict[str, str]) -> ReceivedFrame:
        return ReceivedFrame(
            body=frame.image,
            received_at=received_at,
            kind=self.kind,
            source=self.request.source,
            status=200,
            meta={**meta, "pts": "" if frame.pts_s is None else f"{frame.pts_s:.3f}"},
        )

    def _undecodable(self, reason: str) -> ReceivedFrame:
        self.undecodable += 1
        return ReceivedFrame(
            body=b"",
            received_at=self._wall_clock(),
            kind=self.kind,
            source=self.request.source,
            status=200,
            meta={"problem": "undecodable_video", "undecodable": reason[:200]},
        )


def _raise_network_error(pumping: asyncio.Task[None]) -> None:
    """Raise what ended the connection, if the network did."""
    if pumping.done() and not pumping.cancelled():
        error = pumping.exception()
        if isinstance(error, NETWORK_ERRORS):
            raise error
