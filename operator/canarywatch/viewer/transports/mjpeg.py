"""``MjpegReader``: hold a ``multipart/x-mixed-replace`` stream open, one frame per part."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Unpack

import aiohttp

from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.transports.base import (
    MAX_ERROR_BODY,
    NETWORK_ERRORS,
    FrameKind,
    ReceivedFrame,
    Transport,
    TransportOptions,
    check_interval,
    header_meta,
    read_some,
)
from canarywatch.viewer.transports.multipart import (
    MultipartParser,
    MultipartPart,
    OversizedPart,
    boundary_from_content_type,
    single_part,
)

__all__ = ["MjpegReader"]


class MjpegReader(Transport):
    """Reads a ``multipart/x-mixed-replace`` stream; one frame per part.

    Reconnects (with backoff, reset by every part received, cut short when the hub's
    link sees the integration serve again after server errors) when the stream ends,
    the server closes it, or nothing arrives for ``timeout_s``. Parts larger than
    ``max_part_bytes`` (or announcing so) are skipped without being buffered and
    reported as an empty frame with ``meta["skipped"] == "oversized"`` (and counted in
    ``oversized``); the stream goes on from the next boundary. A 200 whose stream ends
    without a part is reported as a frame with ``meta["problem"] == "empty_stream"``.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        request: RenderedRequest,
        *,
        max_part_bytes: int = 8 * 1024 * 1024,
        reconnect_base_s: float = 0.5,
        **options: Unpack[TransportOptions],
    ) -> None:
        options.setdefault("timeout_s", 30.0)  # a stream's silence, not one request
        super().__init__(session, **options)
        if max_part_bytes < 1:
            raise ValueError(f"max_part_bytes must be >= 1, got {max_part_bytes}")
        check_interval(reconnect_base_s, name="reconnect_base_s")
        self.request = request
        self.max_part_bytes = max_part_bytes
        self.reconnect_base_s = reconnect_base_s
        #: connections opened after the first one.
        self.reconnects = 0
        #: parts skipped for exceeding ``max_part_bytes``.
        self.oversized = 0
        #: answers of 200 whose stream ended without a single part.
        self.empty_streams = 0

    async def frames(self) -> AsyncIterator[ReceivedFrame]:
        request = self.request
        failures = 0
        connected_before = False
        while True:
            if connected_before:
                self.reconnects += 1
            connected_before = True
            parts = 0
            try:
                async with self.shaper.stream(
                    self._session,
                    request.method,
                    request.url,
                    headers=request.headers,
                    timeout=self.timeout_s,
                ) as stream:
                    if stream.status != 200:
                        body = await read_some(stream, MAX_ERROR_BODY)
                        yield self._frame(
                            FrameKind.MJPEG,
                            source=request.source,
                            status=stream.status,
                            body=body,
                            headers=stream.headers,
                            success=False,
                        )
                    elif stream.headers.get("Content-Type", "").lower().startswith("image/"):
                        # Not a stream at all: some cameras answer their "MJPEG" URL with a
                        # single JPEG. Take it as one frame and come back for the next.
                        body = await read_some(stream, self.max_part_bytes + 1)
                        parts += 1
                        yield self._part_frame(single_part(body, stream.headers, self.max_part_bytes), {})
                    else:
                        response_meta = header_meta(stream.headers)
                        response_meta.pop("content-type", None)  # the part's own type is the one that matters
                        parser = MultipartParser(
                            boundary_from_content_type(stream.headers.get("Content-Type", "")),
                            max_part_bytes=self.max_part_bytes,
                        )
                        async for chunk in stream:
                            for item in parser.feed(chunk):
                                parts += 1
                                yield self._part_frame(item, response_meta)
                            if parser.finished:
                                break
                        if not parts:
                            # An answer of 200 that ends without one frame is reported, not
                            # just reconnected to: to a monitor it is a blind stream.
                            yield self._no_parts(stream.headers)
            except NETWORK_ERRORS as error:
                self._record_error(error, request.source)
            failures = 0 if parts else failures + 1
            await self._reconnect_wait(failures)

    async def _reconnect_wait(self, failures: int) -> None:
        """The backoff before the next connection, cut short when the integration is
        back: refused for a while (a kill switch), the reader would otherwise wait up
        to ``max_backoff_s`` after a resume while the hub's snapshots show frames again."""
        waits = [
            asyncio.ensure_future(self._sleep(self._backoff_delay(failures, self.reconnect_base_s))),
            asyncio.ensure_future(self.shaper.integration_back()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def _no_parts(self, headers: Mapping[str, str]) -> ReceivedFrame:
        self.empty_streams += 1
        return self._frame(
            FrameKind.MJPEG,
            source=self.request.source,
            status=200,
            body=b"",
            headers=headers,
            success=True,
            extra={"problem": "empty_stream"},
        )

    def _part_frame(
        self, item: MultipartPart | OversizedPart, response_meta: Mapping[str, str]
    ) -> ReceivedFrame:
        meta = {**response_meta, **header_meta(item.headers)}
        if isinstance(item, OversizedPart):
            self.oversized += 1
            meta.update(skipped="oversized", part_bytes=str(item.size), limit_bytes=str(self.max_part_bytes))
            body = b""
        else:
            body = item.body
        return ReceivedFrame(
            body=body,
            received_at=self._wall_clock(),
            kind=FrameKind.MJPEG,
            source=self.request.source,
            status=200,
            meta=meta,
        )
