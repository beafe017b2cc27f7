"""``AuthzProber``: ask for *other* tenants' resources with the viewer's own credentials;
the only right answers are 401/403/404."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Sequence
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

__all__ = ["DENIED_STATUSES", "AuthzProber"]

#: The answers an authorization probe expects for another tenant's resource.
DENIED_STATUSES = frozenset({401, 403, 404})


class AuthzProber(Transport):
    """Asks for other tenants' resources with the viewer's own credentials, a round
    every ``interval_s``.

    401/403/404 are the expected answers (counted in ``answers``); a success with a
    body is a resource served across tenants and is yielded (kind ``probe``, meta
    ``target_tenant``, ``target_camera``) for the caller to decode. Other statuses
    (a 503 from a disabled integration, a 500) are yielded with an empty body.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        requests: Sequence[RenderedRequest],
        *,
        interval_s: float,
        **options: Unpack[TransportOptions],
    ) -> None:
        super().__init__(session, **options)
        if not requests:
            raise ValueError("AuthzProber needs at least one request to probe")
        check_interval(interval_s)
        self.requests = tuple(requests)
        self.interval_s = interval_s
        #: status -> how many probes got it.
        self.answers: collections.Counter[int] = collections.Counter()

    @property
    def denied(self) -> int:
        """Probes answered as they should be: 401, 403 or 404."""
        return sum(self.answers[status] for status in DENIED_STATUSES)

    async def frames(self) -> AsyncIterator[ReceivedFrame]:
        failures = 0
        while True:
            round_failed = False
            for request in self.requests:
                try:
                    response = await self._fetch(
                        request.method, request.url, headers=request.headers, body=request.body
                    )
                except NETWORK_ERRORS as error:
                    round_failed = True
                    self._record_error(error, request.source)
                    continue
                self.answers[response.status] += 1
                success = 200 <= response.status < 300
                if response.status in DENIED_STATUSES or (success and not response.body):
                    continue
                yield self._answer(
                    FrameKind.PROBE,
                    response,
                    source=request.source,
                    success=success,
                    extra={"target_tenant": request.tenant, "target_camera": request.camera},
                )
            if round_failed:
                failures += 1
                await self._back_off(failures, self.interval_s)
            else:
                failures = 0
                await self._sleep(self.interval_s)
