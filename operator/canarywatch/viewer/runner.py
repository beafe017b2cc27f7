"""Runs a viewer plan: the one place hub viewers are assembled and driven.

``ViewerRunner`` opens every ``StreamPlan`` (``viewer.plan``) as a transport and
judges each frame it receives (``judge_frames``), handing the result to the shell's
``handle`` (the ``Monitor``, or the pod agent that reports LeakIncidents). It owns:

- the HTTP sessions, one per stream (a hub holds its own connections; ``viewer_session``);
- the shapers, one per hub (tenant, network profile): a hub has one link and one
  estimate of it, shared by all its streams, so the client hints its MJPEG stream
  sends are what its snapshots measured;
- the measure-before-MJPEG rule: a stream planned ``measure_first`` connects only once
  its hub has measured the link (bounded by ``measure_wait_s``). An MJPEG stream asks
  for its rendition once, at connect; opened unmeasured it would carry no client hints
  and be served as a fast hub for as long as it stays open — and the 2019 leak was
  served only to slow ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from canarywatch.httpclient import client_session
from canarywatch.markers import Decoder
from canarywatch.metrics import Metrics
from canarywatch.tasks import cancel_within
from canarywatch.viewer.decoding import DecodePool
from canarywatch.viewer.judging import FrameResult, StreamJudge, ViewerStream
from canarywatch.viewer.loop import judge_frames
from canarywatch.viewer.network import NetworkProfile, Shaper
from canarywatch.viewer.plan import StreamPlan
from canarywatch.viewer.transports import (
    AuthzProber,
    EventFeedReader,
    HlsReader,
    MjpegReader,
    Mp4Reader,
    ReceivedFrame,
    RtspReader,
    SnapshotPoller,
    WhepReader,
)
from canarywatch.viewer.transports.base import Transport
from canarywatch.viewer.transports.hub import HubViewer

__all__ = ["MEASURE_WAIT_S", "STOP_S", "RunningStream", "ViewerRunner", "viewer_session"]

log = logging.getLogger(__name__)

Handler = Callable[[FrameResult], Awaitable[object]]
ShaperFactory = Callable[[NetworkProfile], Shaper]

#: The longest an MJPEG stream waits for its hub's first measurement: a hub whose other
#: streams measure nothing (no snapshots, an integration that does not answer) still
#: opens its stream, and the stream's own connect measures the round trip.
MEASURE_WAIT_S = 10.0
#: The longest ``stop()`` waits for the streams to leave (a WHEP session's DELETE is
#: bounded at 2 s, its peer connection's close by nothing of its own).
STOP_S = 5.0

# A hub shows the newest frame its link can carry. Every buffer between the relay and
# the decoder holds frames that are already old when they are read: the kernel doubles
# SO_RCVBUF, and aiohttp keeps reading until twice ``read_bufsize`` is queued. At the
# ``extreme`` profile's 150 kbit/s each 16 KiB is almost a second, so streams keep both
# small; snapshots (one request, one frame) keep the defaults.
STREAM_RECEIVE_BUFFER = 16 * 1024


def _stream_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STREAM_RECEIVE_BUFFER)
    return sock


def viewer_session(kind: str) -> aiohttp.ClientSession:
    """The HTTP session of one viewer stream (a hub holds its own connections): for
    ``mjpeg``, small receive buffers so that a slow link shows late frames as late."""
    if kind != "mjpeg":
        return client_session()
    connector = aiohttp.TCPConnector(socket_factory=_stream_socket)
    return client_session(connector=connector, read_bufsize=STREAM_RECEIVE_BUFFER)


@dataclass
class RunningStream:
    """One planned stream, opened."""

    plan: StreamPlan
    transport: Transport
    session: aiohttp.ClientSession
    shaper: Shaper
    judge: StreamJudge

    @property
    def stream(self) -> ViewerStream:
        return self.plan.stream

    @property
    def errors(self) -> int:
        """Network errors and timeouts so far (each one retried)."""
        return self.transport.errors


class ViewerRunner:
    """Opens ``plan`` and judges every frame until stopped.

    ``start()`` (in the running loop) opens the streams and starts one task each;
    ``stop()`` cancels them and closes the sessions; or ``async with runner.running()``. ``shaper``
    makes a hub's shaper from its profile (tests pass one on fake time); ``pool`` is where
    frames are decoded (default: the process's shared ``DecodePool``).
    """

    def __init__(
        self,
        plan: Sequence[StreamPlan],
        *,
        decoder: Decoder,
        metrics: Metrics,
        handle: Handler,
        clock: Callable[[], float] = time.time,
        shaper: ShaperFactory = Shaper,
        measure_wait_s: float = MEASURE_WAIT_S,
        pool: DecodePool | None = None,
    ) -> None:
        self.plan = tuple(plan)
        self.decoder = decoder
        self.metrics = metrics
        self.handle = handle
        self.clock = clock
        self._make_shaper = shaper
        self.measure_wait_s = measure_wait_s
        self.pool = pool
        self.streams: list[RunningStream] = []
        self.shapers: dict[tuple[str, str], Shaper] = {}
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.streams)

    def start(self) -> list[asyncio.Task[None]]:
        """Open every stream and start judging; the tasks, for the caller's bookkeeping."""
        if self.tasks:
            raise RuntimeError("the viewer runner is already started")
        self.streams = [self._open(plan) for plan in self.plan]
        # Every stream's verdict series, and its camera's seen counter, exist at 0 before
        # its first frame (Metrics.prime).
        for s in self.streams:
            stream = s.stream
            self.metrics.prime(
                integration=stream.integration,
                probe=stream.probe,
                streams=[(stream.tenant, stream.kind, stream.profile)],
            )
            if stream.camera is not None:
                own = [(stream.tenant, stream.camera)]
                self.metrics.delivery.prime_seen(
                    integration=stream.integration, probe=stream.probe, cameras=own
                )
        self.tasks = [asyncio.create_task(self._view(s), name=s.stream.key) for s in self.streams]
        return list(self.tasks)

    async def stop(self, timeout: float = STOP_S) -> None:
        """Cancel every stream and close its session (idempotent): a stream still
        leaving after ``timeout`` seconds (a peer connection whose close hangs) is left
        behind, named in the log, so a stopping viewer never waits on it."""
        await cancel_within(self.tasks, timeout)
        for s in self.streams:
            await s.session.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ViewerRunner]:
        """``start()`` on entry, ``stop()`` on the way out."""
        self.start()
        try:
            yield self
        finally:
            await self.stop()

    # -- internals ------------------------------------------------------------------------

    def _open(self, plan: StreamPlan) -> RunningStream:
        shaper = self.shapers.get(plan.hub)
        if shaper is None:
            shaper = self.shapers[plan.hub] = self._make_shaper(plan.profile)
        session = viewer_session(plan.path)
        judge = StreamJudge(self.decoder, plan.stream, max_age=plan.max_age, clock=self.clock, pool=self.pool)
        return RunningStream(plan, _transport(plan, session, shaper), session, shaper, judge)

    async def _view(self, s: RunningStream) -> None:
        frames = s.transport.frames()
        if s.plan.measure_first:
            frames = self._after_measurement(s.shaper, frames)
        await judge_frames(frames, s.judge, metrics=self.metrics, handle=self.handle)

    async def _after_measurement(
        self, shaper: Shaper, frames: AsyncIterator[ReceivedFrame]
    ) -> AsyncIterator[ReceivedFrame]:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.measure_wait_s):  # wait_for may drop a cancellation
                await shaper.measured()
        async for frame in frames:
            yield frame


def _transport(plan: StreamPlan, session: aiohttp.ClientSession, shaper: Shaper) -> Transport:
    interval = plan.interval_s
    if plan.path == "mjpeg":
        return MjpegReader(session, plan.requests[0], shaper=shaper)
    if plan.path in ("hls", "llhls"):
        return HlsReader(session, plan.requests[0], shaper=shaper, low_latency=plan.path == "llhls")
    if plan.path == "hub":
        if plan.device is None:
            raise ValueError(f"stream {plan.stream.key}: a hub stream needs its device")
        return HubViewer(
            session, plan.requests[0], device=plan.device, protocol=plan.hub_protocol, shaper=shaper
        )
    if plan.path == "rtsp":
        return RtspReader(session, plan.requests[0], shaper=shaper)
    if plan.path == "mp4":
        return Mp4Reader(session, plan.requests[0], shaper=shaper)
    if plan.path == "whep":
        return WhepReader(session, plan.requests[0], shaper=shaper)
    if interval is None:
        raise ValueError(f"stream {plan.stream.key}: a polled path needs an interval")
    if plan.path == "snapshot":
        return SnapshotPoller(session, plan.requests[0], interval_s=interval, shaper=shaper)
    if plan.path == "thumbnail":
        return EventFeedReader(session, plan.requests[0], interval_s=interval, shaper=shaper)
    if plan.path == "probe":
        return AuthzProber(session, plan.requests, interval_s=interval, shaper=shaper)
    raise ValueError(f"stream {plan.stream.key}: unknown path {plan.path!r}")
