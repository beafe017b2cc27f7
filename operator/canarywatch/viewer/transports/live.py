"""``LiveVideoReader``: what the readers of a video stream share (RTSP, WHEP, MP4).

One request, watched connection after connection: each connection's decoded frames are
sampled (``Sampling``) and yielded; when it ends or fails the reader connects again,
with backoff from ``reconnect_base_s`` (reset by every frame received), or after the
pause a subclass asks for (an MP4 file is fetched again every few seconds).
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncGenerator
from typing import ClassVar, Unpack

import aiohttp

from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.transports.base import ReceivedFrame, Transport, TransportOptions, check_interval
from canarywatch.viewer.transports.video import Sampling

__all__ = ["LiveVideoOptions", "LiveVideoReader"]


class LiveVideoOptions(TransportOptions, total=False):
    """``LiveVideoReader``'s keywords, for a subclass that takes more of its own."""

    sampling: Sampling | None
    reconnect_base_s: float


class LiveVideoReader(Transport):
    """Watches ``request``'s live stream; a subclass yields one connection's frames
    (``_connection``) and says which frames it samples by default (``default_sampling``)."""

    default_sampling: ClassVar[Sampling]

    def __init__(
        self,
        session: aiohttp.ClientSession,
        request: RenderedRequest,
        *,
        sampling: Sampling | None = None,
        reconnect_base_s: float = 0.5,
        **options: Unpack[TransportOptions],
    ) -> None:
        super().__init__(session, **options)
        check_interval(reconnect_base_s, name="reconnect_base_s")
        self.request = request
        self.sampling = self.default_sampling if sampling is None else sampling
        self.reconnect_base_s = reconnect_base_s
        #: connections opened after the first one.
        self.reconnects = 0

    async def frames(self) -> AsyncGenerator[ReceivedFrame, None]:
        failures = 0
        first = True
        while True:
            if not first:
                self.reconnects += 1
            first = False
            received = 0
            last: ReceivedFrame | None = None
            # closed here, not when collected: leaving a connection releases it at once
            # (a WHEP session is DELETEd, an RTSP reader's FFmpeg stops)
            async with contextlib.aclosing(self._connection()) as connection:
                async for frame in connection:
                    received += frame.status == 200 and bool(frame.body)
                    last = frame
                    yield frame
            pause = self._pause_after(last) if received and last is not None else None
            if pause is not None:
                failures = 0
                await self._sleep(pause)
                continue
            failures = 0 if received else failures + 1
            await self._back_off(max(1, failures), self.reconnect_base_s)

    @abc.abstractmethod
    def _connection(self) -> AsyncGenerator[ReceivedFrame, None]:
        """The frames of one connection, until it ends; its refusal or failure last."""

    def _pause_after(self, last: ReceivedFrame) -> float | None:
        """After a connection that gave frames and ended with ``last``: how long to wait
        before the next one (a file fetched again), or None for a live stream's
        reconnection (at once, then with backoff)."""
        return None
