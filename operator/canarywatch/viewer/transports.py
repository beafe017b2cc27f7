"""How a hub viewer receives frames: async iterators of ``ReceivedFrame``.

One class per integration path a hub uses, each sending its requests through a
``Shaper`` (so it sees the network its profile describes, and announces it):

- ``SnapshotPoller``: ``GET`` a snapshot URL every ``interval_s``.
- ``MjpegReader``: hold a ``multipart/x-mixed-replace`` stream open, one frame per part.
- ``EventFeedReader``: poll an event feed (``?since=<id>``) and fetch each new event's
  thumbnail, the path of the Wyze-class leak.
- ``AuthzProber``: ask for *other* tenants' resources with the viewer's own credentials;
  the only right answers are 401/403/404.

What they share, because a monitor must outlive the thing it monitors:

- Network errors and timeouts are counted (``errors``, ``last_error``) and retried with
  capped exponential backoff; they are never raised.
- Answers other than success are yielded as frames with an empty body and the status
  (and the JSON ``error`` code in ``meta`` when the integration sends one), so the
  caller can tell "integration disabled" (a 503) from "no frame yet" (a 404).
- Loops stop promptly on cancellation and close what they hold open. Iterate them in a
  task and cancel it, or wrap ``frames()`` in ``contextlib.aclosing`` when breaking out
  of the loop early; either closes the open response at once.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import enum
import json
import logging
import random
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import aiohttp

from canarywatch.retrying import backoff_delay
from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.network import GOOD, ShapedResponse, Shaper

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DENIED_STATUSES",
    "AuthzProber",
    "EventFeedReader",
    "FrameKind",
    "MjpegReader",
    "MultipartParser",
    "MultipartPart",
    "OversizedPart",
    "ReceivedFrame",
    "SnapshotPoller",
    "boundary_from_content_type",
]

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

#: The answers an authorization probe expects for another tenant's resource.
DENIED_STATUSES = frozenset({401, 403, 404})

# What a monitor treats as "the network failed this time" rather than a bug: aiohttp's
# client errors (refused, reset, bad payload, server gone), timeouts (the shaper's and
# asyncio's are both TimeoutError) and bare connection errors from the transport.
_NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, ConnectionError)

# Response headers copied into a frame's meta: the integration's own markers of which
# rendition and frame it served, and the usual cache diagnostics, which are exactly
# what a leak investigation wants next to the frame.
_META_HEADERS = (
    "Content-Type",
    "X-Relay-Variant",
    "X-Frame-Seq",
    "Retry-After",
    "Age",
    "X-Cache",
    "CF-Cache-Status",
    "ETag",
)
_MAX_META_VALUE = 200
# Error bodies are read for their JSON `error` code only; a huge one is not worth parsing.
_MAX_ERROR_BODY = 16 * 1024
#: Default cap on a snapshot, thumbnail or probe body: far above any camera frame, far
#: below what would hurt a viewer pod if a misconfigured URL pointed at a stream or a file.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


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
        return aiohttp.ClientSession()
    connector = aiohttp.TCPConnector(socket_factory=_stream_socket)
    return aiohttp.ClientSession(connector=connector, read_bufsize=STREAM_RECEIVE_BUFFER)


class FrameKind(enum.StrEnum):
    """Which path a frame came through."""

    SNAPSHOT = "snapshot"
    MJPEG = "mjpeg"
    THUMBNAIL = "thumbnail"
    PROBE = "probe"


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


class _Transport(abc.ABC):
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

    async def _back_off(self, failures: int, base_s: float) -> None:
        await self._sleep(
            backoff_delay(
                max(1, failures),
                base_delay=min(base_s, self.max_backoff_s),
                max_delay=self.max_backoff_s,
                rng=self._rng,
            )
        )

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
        marked ``skipped: oversized`` (the verdict for it is ``undecodable``)."""
        oversized = {"skipped": "oversized", "limit_bytes": str(self.max_body_bytes)}
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
        meta = _header_meta(headers)
        if not success:
            code = _error_code(body)
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


class SnapshotPoller(_Transport):
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
        _check_interval(interval_s)
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
            except _NETWORK_ERRORS as error:
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


class MjpegReader(_Transport):
    """Reads a ``multipart/x-mixed-replace`` stream; one frame per part.

    Reconnects (with backoff, reset by every part received) when the stream ends, the
    server closes it, or nothing arrives for ``timeout_s``. Parts larger than
    ``max_part_bytes`` are skipped without being buffered and reported as an empty
    frame with ``meta["skipped"] == "oversized"`` (and counted in ``oversized``).
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
        _check_interval(reconnect_base_s, name="reconnect_base_s")
        self.request = request
        self.max_part_bytes = max_part_bytes
        self.reconnect_base_s = reconnect_base_s
        #: connections opened after the first one.
        self.reconnects = 0
        #: parts skipped for exceeding ``max_part_bytes``.
        self.oversized = 0

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
                        body = await _read_some(stream, _MAX_ERROR_BODY)
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
                        body = await _read_some(stream, self.max_part_bytes + 1)
                        parts += 1
                        yield self._part_frame(_single_part(body, stream.headers, self.max_part_bytes), {})
                    else:
                        response_meta = _header_meta(stream.headers)
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
            except _NETWORK_ERRORS as error:
                self._record_error(error, request.source)
            failures = 0 if parts else failures + 1
            await self._back_off(failures, self.reconnect_base_s)

    def _part_frame(
        self, item: MultipartPart | OversizedPart, response_meta: Mapping[str, str]
    ) -> ReceivedFrame:
        meta = {**response_meta, **_header_meta(item.headers)}
        if isinstance(item, OversizedPart):
            self.oversized += 1
            meta.update(skipped="oversized", part_bytes=str(item.size))
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


@dataclass(frozen=True)
class _FeedEvent:
    event_id: int
    camera: str
    time: str
    thumbnail: str


class EventFeedReader(_Transport):
    """Polls an event feed and yields each new event's thumbnail (kind ``thumbnail``,
    meta ``event_id``, ``camera``, ``event_time``).

    The feed answers a JSON list (or ``{"events": [...]}``) of ``{id, camera, time,
    thumbnail}`` with integer ids, oldest first, and takes ``since=<last id>``.
    Relative thumbnail URLs are resolved against ``base_url`` (default: the feed URL).
    The feed's headers (its credentials) go only to thumbnails on the feed's own
    origin; a thumbnail elsewhere (a signed CDN URL) is fetched without them.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        feed: RenderedRequest,
        *,
        interval_s: float,
        base_url: str | None = None,
        since: int = 0,
        **options: Unpack[TransportOptions],
    ) -> None:
        super().__init__(session, **options)
        _check_interval(interval_s)
        self.feed = feed
        self.interval_s = interval_s
        self.base_url = base_url or feed.url
        #: the newest event id handled; the next poll asks for events after it.
        self.since = since
        #: feed answers or events that could not be understood (skipped).
        self.malformed = 0

    async def frames(self) -> AsyncIterator[ReceivedFrame]:
        feed = self.feed
        failures = 0
        while True:
            try:
                response = await self._fetch(
                    feed.method,
                    _with_query(feed.url, since=str(self.since)),
                    headers=feed.headers,
                    body=feed.body,
                )
                if response.status != 200 or response.truncated:
                    yield self._answer(FrameKind.THUMBNAIL, response, source=feed.source, success=False)
                else:
                    for event in self._parse(response.body):
                        thumbnail = await self._thumbnail(event)
                        # Advanced once the thumbnail is in (a network error above retries
                        # the same event next time) and before it is handed over (a
                        # consumer that stops here has seen it).
                        self.since = max(self.since, event.event_id)
                        yield thumbnail
            except _NETWORK_ERRORS as error:
                failures += 1
                self._record_error(error, feed.source)
                await self._back_off(failures, self.interval_s)
                continue
            failures = 0
            await self._sleep(self.interval_s)

    async def _thumbnail(self, event: _FeedEvent) -> ReceivedFrame:
        url = urljoin(self.base_url, event.thumbnail)
        headers = self.feed.headers if _same_origin(url, self.feed.url) else {}
        response = await self._fetch("GET", url, headers=headers)
        return self._answer(
            FrameKind.THUMBNAIL,
            response,
            source=urlsplit(url).path,
            success=response.status == 200,
            extra={"event_id": str(event.event_id), "camera": event.camera, "event_time": event.time},
        )

    def _parse(self, body: bytes) -> list[_FeedEvent]:
        try:
            document = json.loads(body)
        except ValueError:
            self.malformed += 1
            return []
        if isinstance(document, dict):
            document = document.get("events")
        if not isinstance(document, list):
            self.malformed += 1
            return []
        events = []
        for item in document:
            event = _feed_event(item)
            if event is None:
                self.malformed += 1
            elif event.event_id > self.since:  # a feed that ignores `since` repeats itself
                events.append(event)
        return sorted(events, key=lambda e: e.event_id)


class AuthzProber(_Transport):
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
        _check_interval(interval_s)
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
                except _NETWORK_ERRORS as error:
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


# -- multipart/x-mixed-replace ---------------------------------------------------------


@dataclass(frozen=True)
class MultipartPart:
    """One complete part; header names lower-cased."""

    headers: Mapping[str, str]
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class OversizedPart:
    """A part that exceeded the size cap and was discarded; ``size`` is its length."""

    headers: Mapping[str, str]
    size: int


_BOUNDARY_PARAM = re.compile(r"""boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))""", re.IGNORECASE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_JPEG_SOI = b"\xff\xd8"


def boundary_from_content_type(content_type: str) -> str | None:
    """The ``boundary`` parameter of a multipart Content-Type, quoted or not."""
    match = _BOUNDARY_PARAM.search(content_type)
    if match is None:
        return None
    return match.group(1) or match.group(2)


class MultipartParser:
    """Incremental, tolerant parser of ``multipart/x-mixed-replace`` bodies (pure).

    Cameras and relays get this format wrong in every possible way, so it accepts:
    parts with or without ``Content-Length`` (a wrong length is survived: the parser
    resynchronises on the next delimiter), CRLF or bare LF line ends, no newline
    before a delimiter, a declared boundary that already starts with ``--``, a
    missing boundary parameter (taken from the first ``--`` line), parts without any
    header block (a JPEG straight after the delimiter), and junk between parts.

    Memory is bounded by ``max_part_bytes``: a larger part is discarded as it arrives
    and reported as an ``OversizedPart``.
    """

    def __init__(
        self, boundary: str | None, *, max_part_bytes: int, max_header_bytes: int = 8 * 1024
    ) -> None:
        self.max_part_bytes = max_part_bytes
        self.max_header_bytes = max_header_bytes
        self._delimiters: tuple[bytes, ...] = () if not boundary else _delimiters(boundary.encode("latin-1"))
        self._buffer = bytearray()
        self._state = "seek"  # seek → headers → body → seek ...
        self._headers: dict[str, str] = {}
        self._length: int | None = None
        self._skipped = 0  # bytes of the current part discarded for being over the cap
        self._scan_from = 0
        #: the closing delimiter (``--boundary--``) was seen; nothing more will come.
        self.finished = False

    def feed(self, data: bytes) -> list[MultipartPart | OversizedPart]:
        """Parts completed by ``data``, in order."""
        if self.finished:
            return []
        self._buffer += data
        parts: list[MultipartPart | OversizedPart] = []
        while not self.finished and self._step(parts):
            pass
        return parts

    def _step(self, parts: list[MultipartPart | OversizedPart]) -> bool:
        """Advance one state; False when more data is needed."""
        if self._state == "seek":
            return self._seek()
        if self._state == "headers":
            return self._read_headers()
        if self._length is not None:
            return self._read_sized_body(parts)
        return self._read_delimited_body(parts)

    def _seek(self) -> bool:
        if not self._delimiters and not self._sniff_boundary():
            return False
        found = self._find_delimiter(0)
        if found is None:
            # Preamble or junk: drop it, keeping what could be the start of a delimiter.
            keep = max(len(d) for d in self._delimiters) - 1
            del self._buffer[: max(0, len(self._buffer) - keep)]
            return False
        start, length = found
        del self._buffer[:start]
        after = self._buffer[length : length + 2]
        if len(after) < 2:
            return False
        if after == b"--":
            self.finished = True
            return False
        line_end = self._buffer.find(b"\n", length)
        if line_end < 0:
            if len(self._buffer) > self.max_header_bytes:  # not a delimiter line after all
                del self._buffer[:length]
                return True
            return False
        del self._buffer[: line_end + 1]
        self._state, self._headers, self._length = "headers", {}, None
        self._skipped, self._scan_from = 0, 0
        return True

    def _sniff_boundary(self) -> bool:
        # No boundary declared: the first line starting with "--" is the delimiter.
        for raw_line in bytes(self._buffer).split(b"\n")[:-1]:  # complete lines only
            line = raw_line.strip()
            if line.startswith(b"--") and len(line) > 2:
                self._delimiters = (line,)
                return True
        if len(self._buffer) > self.max_header_bytes:
            del self._buffer[: -self.max_header_bytes]
        return False

    def _read_headers(self) -> bool:
        buffer = self._buffer
        if buffer.startswith((b"\r\n", b"\n")):
            del buffer[: 2 if buffer.startswith(b"\r\n") else 1]
            self._state = "body"
            return True
        if buffer.startswith(_JPEG_SOI):
            self._state = "body"  # no header block at all
            return True
        match = _HEADER_END.search(buffer, 0, self.max_header_bytes + 4)
        if match is None:
            if len(buffer) > self.max_header_bytes:
                self._state = "seek"  # not a header block: resynchronise on the next delimiter
                return True
            return False
        for raw_line in bytes(buffer[: match.start()]).split(b"\n"):
            name, colon, value = raw_line.decode("latin-1").partition(":")
            if colon:
                self._headers[name.strip().lower()] = value.strip()
        del buffer[: match.end()]
        self._length = _content_length(self._headers.get("content-length"))
        self._state = "body"
        return True

    def _read_sized_body(self, parts: list[MultipartPart | OversizedPart]) -> bool:
        assert self._length is not None
        if self._length > self.max_part_bytes:
            discard = min(len(self._buffer), self._length - self._skipped)
            del self._buffer[:discard]
            self._skipped += discard
            if self._skipped < self._length:
                return False
            parts.append(OversizedPart(self._headers, self._length))
        else:
            if len(self._buffer) < self._length:
                return False
            parts.append(MultipartPart(self._headers, bytes(self._buffer[: self._length])))
            del self._buffer[: self._length]
        self._state = "seek"
        return True

    def _read_delimited_body(self, parts: list[MultipartPart | OversizedPart]) -> bool:
        found = self._find_delimiter(self._scan_from)
        if found is None:
            keep = max(len(d) for d in self._delimiters) + 1  # a delimiter and its CRLF may straddle reads
            if self._skipped or len(self._buffer) > self.max_part_bytes:
                discard = max(0, len(self._buffer) - keep)
                del self._buffer[:discard]
                self._skipped += discard
            self._scan_from = max(0, len(self._buffer) - keep)
            return False
        end, _ = found
        body = bytes(self._buffer[:end])
        # The line break before a delimiter belongs to the delimiter, not the body.
        if body.endswith(b"\r\n"):
            body = body[:-2]
        elif body.endswith(b"\n"):
            body = body[:-1]
        del self._buffer[:end]
        if self._skipped:
            parts.append(OversizedPart(self._headers, self._skipped + len(body)))
        elif len(body) > self.max_part_bytes:
            parts.append(OversizedPart(self._headers, len(body)))
        else:
            parts.append(MultipartPart(self._headers, body))
        self._state, self._skipped = "seek", 0
        return True

    def _find_delimiter(self, start: int) -> tuple[int, int] | None:
        """(index, length) of the earliest delimiter at or after ``start``; at equal
        positions the longest wins, so ``----b`` is not mistaken for ``--b`` + junk."""
        best: tuple[int, int] | None = None
        for delimiter in self._delimiters:
            index = self._buffer.find(delimiter, start)
            if index >= 0 and (
                best is None or index < best[0] or (index == best[0] and len(delimiter) > best[1])
            ):
                best = (index, len(delimiter))
        return best


def _delimiters(boundary: bytes) -> tuple[bytes, ...]:
    # RFC 2046 delimiters are "--" + boundary. Many cameras declare the boundary with
    # the dashes already in it and then write it without adding more; accept both.
    if boundary.startswith(b"--"):
        return (b"--" + boundary, boundary)
    return (b"--" + boundary,)


def _single_part(
    body: bytes, headers: Mapping[str, str], max_part_bytes: int
) -> MultipartPart | OversizedPart:
    part_headers = {"content-type": headers.get("Content-Type", "")}
    if len(body) > max_part_bytes:
        # The body was read only up to the cap; the announced length is the true size.
        return OversizedPart(part_headers, _content_length(headers.get("Content-Length")) or len(body))
    return MultipartPart(part_headers, body)


def _content_length(raw: str | None) -> int | None:
    if raw is None or not raw.strip().isdigit():
        return None  # absent or nonsense: fall back to scanning for the delimiter
    return int(raw.strip())


# -- helpers -------------------------------------------------------------------------


def _check_interval(value: float, *, name: str = "interval_s") -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0 seconds, got {value}")


def _header_meta(headers: Mapping[str, str]) -> dict[str, str]:
    # `headers` is case-insensitive for responses; part headers arrive lower-cased.
    meta = {}
    for name in _META_HEADERS:
        value = headers.get(name, headers.get(name.lower()))
        if value is not None:
            meta[name.lower()] = value[:_MAX_META_VALUE]
    return meta


def _error_code(body: bytes) -> str | None:
    """The ``error`` field of a JSON error body (``integration_disabled``, ``outage``)."""
    if not body or len(body) > _MAX_ERROR_BODY:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    code = document.get("error") if isinstance(document, dict) else None
    return code[:64] if isinstance(code, str) else None


async def _read_some(stream: AsyncIterator[bytes], limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)


def _feed_event(item: object) -> _FeedEvent | None:
    if not isinstance(item, dict):
        return None
    raw_id, thumbnail = item.get("id"), item.get("thumbnail")
    if isinstance(raw_id, str) and raw_id.isdigit():
        raw_id = int(raw_id)
    if not isinstance(raw_id, int) or isinstance(raw_id, bool) or raw_id < 0:
        return None
    if not isinstance(thumbnail, str) or not thumbnail:
        return None
    camera, event_time = item.get("camera", ""), item.get("time", "")
    return _FeedEvent(raw_id, str(camera), str(event_time), thumbnail)


def _with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` set in its query (replacing any existing value)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _same_origin(url: str, other: str) -> bool:
    a, b = urlsplit(url), urlsplit(other)
    default = {"http": 80, "https": 443}
    return (a.scheme, a.hostname, a.port or default.get(a.scheme)) == (
        b.scheme,
        b.hostname,
        b.port or default.get(b.scheme),
    )
