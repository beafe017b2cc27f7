"""What every transport shares: the frame it yields, its options, and the bookkeeping
of a loop that must outlive the thing it monitors (errors counted, backoff, answers
other than success turned into empty frames)."""

from __future__ import annotations

import abc
import asyncio
import enum
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypedDict
from urllib.parse import urlsplit

import aiohttp

from canarywatch.retrying import Backoff
from canarywatch.viewer.network import GOOD, ShapedResponse, Shaper

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_ERROR_BODY",
    "NETWORK_ERRORS",
    "FrameKind",
    "ReceivedFrame",
    "Sleep",
    "Transport",
    "TransportOptions",
    "check_interval",
    "error_code",
    "header_meta",
    "read_some",
    "same_origin",
]

logger = logging.getLogger("canarywatch.viewer.transports")

Sleep = Callable[[float], Awaitable[None]]

# What a monitor treats as "the network failed this time" rather than a bug: aiohttp's
# client errors (refused, reset, bad payload, server gone), timeouts (the shaper's and
# asyncio's are both TimeoutError) and bare connection errors from the transport.
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, ConnectionError)

# Response headers copied into a frame's meta: the integration's own markers of which
# rendition and frame it served, and the usual cache diagnostics, which are exactly
# what a leak investigation wants next to the frame.
META_HEADERS = (
    "Content-Type",
    "X-Relay-Variant",
    "X-Frame-Seq",
    "Retry-After",
    "Age",
    "X-Cache",
    "CF-Cache-Status",
    "ETag",
)
MAX_META_VALUE = 200
# Error bodies are read for their JSON `error` code only; a huge one is not worth parsing.
MAX_ERROR_BODY = 16 * 1024
#: Default cap on a snapshot, thumbnail or probe body: the decoder's own cap
#: (``markers.ImageLimits().max_bytes``; a longer body could only be rejected), far above
#: any camera frame. Each stream holds at most this much of a body at a time.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


class FrameKind(enum.StrEnum):
    """Which path a frame came through."""

    SNAPSHOT = "snapshot"
    MJPEG = "mjpeg"
    THUMBNAIL = "thumbnail"
    PROBE = "probe"
    HLS = "hls"
    #: a stream a smart display was handed through a hub protocol (``transports.hub``)
    HUB = "hub"
    MP4 = "mp4"
    RTSP = "rtsp"
    WHEP = "whep"


@dataclass(frozen=True)
class ReceivedFrame:
    """One answer an integration gave a viewer; ``body`` is empty for non-success
    answers and skipped parts (see ``meta``)."""

    body: bytes = field(repr=False)
    #: wall-clock time (``time.time()``) when the body was complete.
    received_at: float
    kind: FrameKind
    #: the URL path it came from, without query (where integrations put secrets).
    source: str
    status: int
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.body)


class TransportOptions(TypedDict, total=False):
    """What every transport takes besides its own settings (keywords of each class).

    ``shaper``: the viewer's network (default: ``good``); ``timeout_s``: per request, or
    for a stream the longest silence (10 s; MJPEG 30 s); ``max_backoff_s``: the longest
    wait between retries (30 s); ``max_body_bytes``: the largest body read (snapshots,
    feeds, probes); ``sleep``, ``wall_clock``, ``rng``: injectable for tests.
    """

    shaper: Shaper | None
    timeout_s: float
    max_backoff_s: float
    max_body_bytes: int
    sleep: Sleep
    wall_clock: Callable[[], float]
    rng: random.Random | None


class Transport(abc.ABC):
    """What every transport shares: session, shaper, time, and error bookkeeping."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        shaper: Shaper | None = None,
        timeout_s: float = 10.0,
        max_backoff_s: float = 30.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        sleep: Sleep = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if max_backoff_s <= 0:
            raise ValueError(f"max_backoff_s must be > 0, got {max_backoff_s}")
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
        self._session = session
        self.shaper = shaper or Shaper(GOOD)
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.max_body_bytes = max_body_bytes
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()
        #: network errors and timeouts so far (each one retried).
        self.errors = 0
        #: the latest of them, for status and logs (no URL query, no token).
        self.last_error: str | None = None

    def __aiter__(self) -> AsyncIterator[ReceivedFrame]:
        return self.frames()

    @abc.abstractmethod
    def frames(self) -> AsyncIterator[ReceivedFrame]:
        """The frames, until cancelled; each call starts a new, independent loop."""

    def _record_error(self, error: BaseException, source: str) -> None:
        self.errors += 1
        # aiohttp's messages can include the full URL; keep the type and the path only.
        self.last_error = f"{type(error).__name__} on {source}"
        logger.debug("%s: %s", source, type(error).__name__)

    def _backoff_delay(self, failures: int, base_s: float) -> float:
        backoff = Backoff(base=min(base_s, self.max_backoff_s), cap=self.max_backoff_s, rng=self._rng)
        return backoff.delay(max(1, failures))

    async def _back_off(self, failures: int, base_s: float) -> None:
        await self._sleep(self._backoff_delay(failures, base_s))

    async def _fetch(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> ShapedResponse:
        return await self.shaper.request(
            self._session,
            method,
            url,
            headers=headers,
            body=body,
            timeout=self.timeout_s,
            max_body_bytes=self.max_body_bytes,
        )

    def _answer(
        self,
        kind: FrameKind,
        response: ShapedResponse,
        *,
        source: str,
        success: bool,
        extra: Mapping[str, str] | None = None,
    ) -> ReceivedFrame:
        """A frame for one complete answer; an over-long body becomes an empty frame
        marked ``skipped: oversized`` (the verdict for it is ``undecodable``), with the
        ``limit_bytes`` it exceeded and the ``body_bytes`` it announced."""
        oversized = {"skipped": "oversized", "limit_bytes": str(self.max_body_bytes)}
        announced = response.headers.get("Content-Length", "")
        if announced.isdigit():
            oversized["body_bytes"] = announced[:20]
        return self._frame(
            kind,
            source=source,
            status=response.status,
            body=b"" if response.truncated else response.body,
            headers=response.headers,
            success=success,
            extra={**(oversized if response.truncated else {}), **(extra or {})},
        )

    def _frame(
        self,
        kind: FrameKind,
        *,
        source: str,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
        success: bool,
        extra: Mapping[str, str] | None = None,
    ) -> ReceivedFrame:
        """A frame for one answer: the body only if ``success``, else the error code."""
        meta = header_meta(headers)
        if not success:
            code = error_code(body)
            if code is not None:
                meta["error"] = code
        meta.update(extra or {})
        return ReceivedFrame(
            body=body if success else b"",
            received_at=self._wall_clock(),
            kind=kind,
            source=source,
            status=status,
            meta=meta,
        )


# -- helpers -------------------------------------------------------------------------


def check_interval(value: float, *, name: str = "interval_s") -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0 seconds, got {value}")


def header_meta(headers: Mapping[str, str]) -> dict[str, str]:
    # `headers` is case-insensitive for responses; part headers arrive lower-cased.
    meta = {}
    for name in META_HEADERS:
        value = headers.get(name, headers.get(name.lower()))
        if value is not None:
            meta[name.lower()] = value[:MAX_META_VALUE]
    return meta


def error_code(body: bytes) -> str | None:
    """The ``error`` field of a JSON error body (``integration_disabled``, ``outage``)."""
    if not body or len(body) > MAX_ERROR_BODY:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    code = document.get("error") if isinstance(document, dict) else None
    return code[:64] if isinstance(code, str) else None


async def read_some(stream: AsyncIterator[bytes], limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)


def same_origin(url: str, other: str) -> bool:
    """Same scheme, host and port (default ports filled in): where a viewer's
    credentials may go when a feed or playlist points elsewhere."""
    a, b = urlsplit(url), urlsplit(other)
    default = {"http": 80, "https": 443, "rtsp": 554}
    return (a.scheme, a.hostname, a.port or default.get(a.scheme)) == (
        b.scheme,
        b.hostname,
        b.port or default.get(b.scheme),
    )
