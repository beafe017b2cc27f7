"""``SnapshotPoller``: ``GET`` a snapshot URL every ``interval_s``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Unpack

import aiohttp

from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.transports.base import (
    NETWORK_ERRORS,
    FrameKind,
    ReceivedFrame,
    Transport,
    TransportOptions,
    check_interval,
)

__all__ = ["SnapshotPoller"]


class SnapshotPoller(Transport):
    """Polls one snapshot URL: one frame per answer, ``interval_s`` after the last one.

    Only 200 carries a frame; any other status is yielded with an empty body.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        request: RenderedRequest,
        *,
        interval_s: float,
        **options: Unpack[TransportOptions],
    ) -> None:
        super().__init__(session, **options)
        check_interval(interval_s)
        self.request = request
        self.interval_s = interval_s

    async def frames(self) -> AsyncIterator[ReceivedFrame]:
        request = self.request
        failures = 0
        while True:
            try:
                response = await self._fetch(
                    request.method, request.url, headers=request.headers, body=request.body
                )
            except NETWORK_ERRORS as error:
                failures += 1
                self._record_error(error, request.source)
                await self._back_off(failures, self.interval_s)
                continue
            failures = 0
            # 200 exactly: a 204 has no frame and a 206 is not a whole one.
            yield self._answer(
                FrameKind.SNAPSHOT, response, source=request.source, success=response.status == 200
            )
            await self._sleep(self.interval_s)
