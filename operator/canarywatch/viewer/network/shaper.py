"""The application-level shaper: a ``NetworkProfile`` applied to a viewer's own HTTP
requests, unprivileged, and the measurement of the link it gets.

Latency before each request, lost requests turning into timeouts, body reads paced to
the bandwidth, stalls in the middle of bodies. The shaper *measures* the round trips
and throughput it gets (an EWMA over its own transfers, as browsers' network quality
estimators do) and sends the client hints derived from that measurement (``hints``).

One shaper is one hub's link: every stream of a hub shares it (``viewer.runner``), so
a long-lived MJPEG stream opens with what the hub's snapshots have measured.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from multidict import CIMultiDict, CIMultiDictProxy

from canarywatch.viewer.network.hints import (
    DOWNLINK_CAP_BPS,
    MIN_THROUGHPUT_SAMPLE_BYTES,
    NetworkEstimate,
    client_hints,
)
from canarywatch.viewer.network.profiles import NetworkProfile
from canarywatch.viewer.network.rtsp_digest import DigestCredentials
from canarywatch.viewer.network.rtsp_redirects import RedirectRefused, RedirectWatch
from canarywatch.viewer.network.rtsp_requests import RequestUriRewriter

if TYPE_CHECKING:  # this package is importable without aiohttp (the builders use its profiles)
    import aiohttp

__all__ = ["STREAM_STALL_UNIT_BYTES", "ShapedResponse", "ShapedStream", "ShapedTcpRelay", "Shaper"]

_T = TypeVar("_T")
# (when it arrived from the server, the bytes); empty bytes: the server closed.
_Chunks = asyncio.Queue[tuple[float, bytes]]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Weight of a new sample in the EWMA: the estimate follows a changed network within a
# handful of requests while one jittery request cannot flip the effective type.
_EWMA_WEIGHT = 0.3

#: For streams, stalls are rolled once per this many bytes received (about one
#: full-size frame), so a long MJPEG stream stalls as often per frame as snapshots do.
STREAM_STALL_UNIT_BYTES = 64 * 1024

# Body reads are sized to about 100 ms of the profile's bandwidth: fine enough that
# pacing is smooth, coarse enough not to spin on tiny reads.
_PACING_SLICE_S = 0.1
_MIN_READ_BYTES = 1024
_MAX_READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class ShapedResponse:
    """A complete response as the shaped viewer received it."""

    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes
    #: seconds from the call to the last body byte, shaping included (shaper's clock).
    elapsed: float
    #: the body was longer than the caller's ``max_body_bytes``; ``body`` is empty.
    truncated: bool = False
    #: the URL that finally answered (after redirects): relative links resolve against it.
    url: str = ""


class Shaper:
    """Applies a ``NetworkProfile`` to a viewer's HTTP requests and measures the result.

    ``clock`` and ``sleep`` pace everything the profile adds (tests pass a fake pair;
    the default is real time). Real network I/O is additionally bounded by the
    request's timeout in real time.
    """

    def __init__(
        self,
        profile: NetworkProfile,
        *,
        rng: random.Random | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        send_client_hints: bool = True,
    ) -> None:
        self.profile = profile
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self._send_client_hints = send_client_hints
        self._rtt_s: float | None = None
        self._downlink_bps: float | None = None
        self._measured = asyncio.Event()
        # A server error seen and no success since: the integration is refusing this hub.
        self._refused = False
        self._back = asyncio.Event()

    @property
    def estimate(self) -> NetworkEstimate:
        return NetworkEstimate(rtt_s=self._rtt_s, downlink_bps=self._downlink_bps)

    async def measured(self) -> None:
        """Return once the link has been measured (a first response timed)."""
        await self._measured.wait()

    async def integration_back(self) -> None:
        """Return at the next success after server errors (a 503 of a switched-off
        integration, a 5xx outage) on this link: the integration serves this hub again,
        and a stream waiting out its reconnect backoff can connect now."""
        await self._back.wait()

    def _note_status(self, status: int) -> None:
        if status >= 500:
            self._refused = True
        elif 200 <= status < 300 and self._refused:
            self._refused = False
            back, self._back = self._back, asyncio.Event()
            back.set()

    def client_hints(self) -> dict[str, str]:
        """The hints the next request will carry (empty until something was measured)."""
        return client_hints(self.estimate) if self._send_client_hints else {}

    def request_headers(self, headers: Mapping[str, str]) -> CIMultiDict[str]:
        """``headers`` plus the measured client hints; headers the caller set win, so a
        configured ``ECT`` or ``Save-Data`` is sent as configured."""
        merged = CIMultiDict(headers)
        for name, value in self.client_hints().items():
            merged.setdefault(name, value)
        return merged

    async def request(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeout: float,
        max_body_bytes: int | None = None,
    ) -> ShapedResponse:
        """One request, shaped: raises ``TimeoutError`` when the profile (a lost
        request, a stall) or the network makes it exceed ``timeout`` seconds, and
        whatever aiohttp raises for connection errors.

        A body longer than ``max_body_bytes`` (announced or found so) is not read further:
        the connection is closed and the response comes back ``truncated``, without a body.
        """
        start = self._clock()
        deadline = start + timeout
        await self._delay(self._latency(), deadline, "latency")
        if self._rng.random() < self.profile.loss:
            await self._lose(deadline, timeout)
        response = await self._io(
            session.request(method, url, headers=self.request_headers(headers), data=body), deadline
        )
        self._note_status(response.status)
        complete = False
        try:
            headers_at = self._clock()
            content_length = response.content_length
            stall_at = self._stall_point(content_length)
            link = _Link(self.profile.bandwidth_bps, headers_at)
            chunks: list[bytes] = []
            received = 0
            # A body announced over the cap is not read at all: the answer is known.
            truncated = max_body_bytes is not None and (content_length or 0) > max_body_bytes
            while not truncated:
                chunk = await self._io(response.content.read(self._read_size()), deadline)
                if not chunk:
                    break
                if max_body_bytes is not None and received + len(chunk) > max_body_bytes:
                    truncated = True
                    chunks.clear()  # what was read is of no use; holding it would double the peak
                    chunk = b""
                chunks.append(chunk)
                received += len(chunk)
                arrived_at = self._clock()
                await self._delay(link.transmit(len(chunk), arrived_at) - arrived_at, deadline, "bandwidth")
                if stall_at is not None and received >= stall_at:
                    stall_at = None
                    await self._delay(self.profile.stall_s, deadline, "stall")
                if truncated:
                    break
            complete = not truncated
        finally:
            # A body read to the end returns its connection to the pool; anything else
            # (truncation, timeout, cancellation) must close it, or the server keeps
            # writing into it.
            if complete:
                response.release()
            else:
                response.close()
        done = self._clock()
        self._observe(rtt_s=headers_at - start, size=received, transfer_s=done - headers_at)
        return ShapedResponse(
            status=response.status,
            headers=CIMultiDictProxy(CIMultiDict(response.headers)),
            body=b"".join(chunks),
            elapsed=done - start,
            truncated=truncated,
            url=str(response.url),
        )

    def stream(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: float,
    ) -> ShapedStream:
        """A long response (MJPEG) as an async context manager and iterator of chunks::

            async with shaper.stream(session, "GET", url, headers=h, timeout=30) as s:
                if s.status == 200:
                    async for chunk in s: ...

        ``timeout`` bounds getting the headers and every wait for the next chunk (an
        idle timeout, as hubs use for streams), not the stream's whole duration.
        """
        return ShapedStream(self, session, method, url, headers=headers, timeout=timeout)

    # -- internals shared with ShapedStream ---------------------------------------

    def _latency(self) -> float:
        jitter = self.profile.jitter_s
        offset = self._rng.uniform(-jitter, jitter) if jitter > 0 else 0.0
        return max(0.0, self.profile.latency_s + offset)

    def _stall_point(self, content_length: int | None) -> float | None:
        """Bytes after which this response stalls, or None; without a length the
        stall comes after the first chunk (the body has started, not finished)."""
        if self.profile.stall_s <= 0 or self._rng.random() >= self.profile.stall_probability:
            return None
        return self._rng.random() * content_length if content_length else 0.0

    def _read_size(self) -> int:
        bandwidth = self.profile.bandwidth_bps
        if bandwidth is None:
            return _MAX_READ_BYTES
        return int(min(_MAX_READ_BYTES, max(_MIN_READ_BYTES, bandwidth / 8 * _PACING_SLICE_S)))

    async def _lose(self, deadline: float, timeout: float) -> None:
        wait = timeout if self.profile.loss_timeout_s is None else min(timeout, self.profile.loss_timeout_s)
        await self._delay(min(wait, max(0.0, deadline - self._clock())), deadline, "lost request")
        raise TimeoutError(f"request lost (network profile {self.profile.name!r})")

    async def _delay(self, seconds: float, deadline: float, what: str) -> None:
        """Wait ``seconds`` of shaped time, or until ``deadline`` and then time out."""
        if seconds <= 0:
            return
        remaining = deadline - self._clock()
        if seconds > remaining:
            await self._sleep(max(0.0, remaining))
            raise TimeoutError(f"{what} exceeded the timeout (network profile {self.profile.name!r})")
        await self._sleep(seconds)

    async def _io(self, awaitable: Awaitable[_T], deadline: float) -> _T:
        async with asyncio.timeout(max(0.0, deadline - self._clock())):
            return await awaitable

    def _observe(self, *, rtt_s: float | None, size: int, transfer_s: float) -> None:
        if rtt_s is not None:
            self._rtt_s = _ewma(self._rtt_s, max(0.0, rtt_s))
            self._measured.set()
        if size >= MIN_THROUGHPUT_SAMPLE_BYTES:
            # A transfer too quick for the clock to see is "faster than any cap".
            sample = size * 8 / transfer_s if transfer_s > 0 else float(DOWNLINK_CAP_BPS)
            self._downlink_bps = _ewma(self._downlink_bps, min(sample, DOWNLINK_CAP_BPS))


class ShapedStream:
    """A shaped long response; see ``Shaper.stream``. ``status`` and ``headers`` are
    available inside ``async with``; iterating yields body chunks."""

    def __init__(
        self,
        shaper: Shaper,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: float,
    ) -> None:
        self._shaper = shaper
        self._session = session
        self._method = method
        self._url = url
        self._headers = headers
        self._timeout = timeout
        self._response: aiohttp.ClientResponse | None = None
        self._link = _Link(shaper.profile.bandwidth_bps, 0.0)
        self._since_stall_roll = 0
        self.status = 0
        self.headers: Mapping[str, str] = CIMultiDictProxy(CIMultiDict())
        #: the URL that finally answered (after redirects), once entered.
        self.url = url

    async def __aenter__(self) -> ShapedStream:
        shaper = self._shaper
        start = shaper._clock()
        deadline = start + self._timeout
        await shaper._delay(shaper._latency(), deadline, "latency")
        if shaper._rng.random() < shaper.profile.loss:
            await shaper._lose(deadline, self._timeout)
        self._response = await shaper._io(
            self._session.request(self._method, self._url, headers=shaper.request_headers(self._headers)),
            deadline,
        )
        headers_at = shaper._clock()
        # Streams give RTT samples only: their throughput is set by the camera's frame
        # rate, so timing them would report an idle camera as a slow network.
        shaper._observe(rtt_s=headers_at - start, size=0, transfer_s=0.0)
        self._link = _Link(shaper.profile.bandwidth_bps, headers_at)
        self.status = self._response.status
        shaper._note_status(self.status)
        self.headers = CIMultiDictProxy(CIMultiDict(self._response.headers))
        self.url = str(self._response.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection (a stream is never read to its end to be reused)."""
        if self._response is not None:
            self._response.close()
            self._response = None

    def __aiter__(self) -> ShapedStream:
        return self

    async def __anext__(self) -> bytes:
        if self._response is None:
            raise StopAsyncIteration
        shaper = self._shaper
        deadline = shaper._clock() + self._timeout
        chunk = await shaper._io(self._response.content.readany(), deadline)
        if not chunk:
            raise StopAsyncIteration
        now = shaper._clock()
        # The idle deadline restarts with every chunk: pacing and stalls are measured
        # against the same timeout a hub would apply to a silent stream.
        deadline = now + self._timeout
        await shaper._delay(self._link.transmit(len(chunk), now) - now, deadline, "bandwidth")
        self._since_stall_roll += len(chunk)
        profile = shaper.profile
        while self._since_stall_roll >= STREAM_STALL_UNIT_BYTES:
            self._since_stall_roll -= STREAM_STALL_UNIT_BYTES
            if profile.stall_s > 0 and shaper._rng.random() < profile.stall_probability:
                await shaper._delay(profile.stall_s, shaper._clock() + self._timeout, "stall")
        return chunk


class ShapedTcpRelay:
    """A loopback TCP relay that carries a stream no HTTP client reads (RTSP over TCP,
    read by FFmpeg) through the shaper's profile, as ``async with``::

        async with ShapedTcpRelay(shaper, "cams.example", 554) as (host, port):
            ...  # point the client at host:port instead

    Each connection waits the profile's latency before it reaches the server (its round
    trip is measured, as a stream's is) and may be lost (held silent until the loss
    timeout, then closed: the client times out as on a dead link). What the server sends
    reaches the client at the profile's bandwidth, each chunk also delayed by the
    latency, stalling as a shaped stream does; a bounded queue between the two holds the
    server back as a slow link's full buffers would. What the client sends goes as it is.
    ``delivered_bytes`` and ``delivery_seconds`` (shaper's clock, first to last chunk)
    say what the client got.

    With ``tls`` the relay speaks TLS to the server itself (its certificate checked for
    ``host``, which is also sent as SNI) and plain bytes to its loopback client: a client
    that would not verify the server (FFmpeg's ``rtsps``) gets a verified link. Nothing
    the client sent is forwarded before the server is connected (and verified); why a
    connection to the server failed is kept in ``upstream_error`` for the client to name.

    With ``refuse_redirects`` (RTSP) a server's ``3xx`` reply never reaches the client
    (whose RTSP client would follow it past the relay, credentials included): both sides
    are closed and ``upstream_error`` is a ``RedirectRefused``.

    With ``rtsp_origin`` (RTSP: the ``scheme://host[:port]`` of the URL the client was
    asked to read) the requests' URIs that name the relay name that origin again when
    they reach the server (``RequestUriRewriter``: a server that keys its streams on the
    URI must see one stream, not one per relay); with ``rtsp_credentials`` too (the
    URL's user and password, kept in memory) a Digest ``Authorization`` the client
    signed for the relay's URL is signed again for the origin's.
    """

    _QUEUE_CHUNKS = 16

    def __init__(
        self,
        shaper: Shaper,
        host: str,
        port: int,
        *,
        connect_timeout_s: float = 10.0,
        tls: ssl.SSLContext | None = None,
        refuse_redirects: bool = False,
        rtsp_origin: str | None = None,
        rtsp_credentials: DigestCredentials | None = None,
    ) -> None:
        self._shaper = shaper
        self._upstream = (host, port)
        self._connect_timeout_s = connect_timeout_s
        self._tls = tls
        self._refuse_redirects = refuse_redirects
        self._rtsp_origin = rtsp_origin
        self._rtsp_credentials = rtsp_credentials
        self._address = ("", 0)
        #: why the last connection to the server failed (None while none has).
        self.upstream_error: OSError | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered_bytes = 0
        self._first_at: float | None = None
        self._last_at: float | None = None

    @property
    def delivery_seconds(self) -> float:
        if self._first_at is None or self._last_at is None:
            return 0.0
        return self._last_at - self._first_at

    async def __aenter__(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        self._address = (str(host), int(port))
        return self._address

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._connection(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        shaper = self._shaper
        upstream_w: asyncio.StreamWriter | None = None
        try:
            start = shaper._clock()
            deadline = start + self._connect_timeout_s
            await shaper._delay(shaper._latency(), deadline, "latency")
            if shaper._rng.random() < shaper.profile.loss:
                await shaper._lose(deadline, self._connect_timeout_s)
            host, port = self._upstream
            connecting = asyncio.open_connection(
                host, port, ssl=self._tls, server_hostname=host if self._tls is not None else None
            )
            try:
                upstream_r, upstream = await shaper._io(connecting, deadline)
            except OSError as error:  # ssl's errors and TimeoutError included
                self.upstream_error = error
                raise
            upstream_w = upstream
            shaper._observe(rtt_s=shaper._clock() - start, size=0, transfer_s=0.0)
            queue: _Chunks = asyncio.Queue(self._QUEUE_CHUNKS)
            receiving = asyncio.create_task(self._receive(upstream_r, queue))
            pumps = [
                asyncio.create_task(_forward(client_r, upstream, self._request_rewriter())),
                asyncio.create_task(self._deliver(queue, client_w)),
            ]
            try:
                # done when the client hangs up, or once all the server sent is delivered
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                pumps.append(receiving)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except (OSError, TimeoutError):
            pass  # the client sees its connection end, as on a broken link
        finally:
            for w in (client_w, upstream_w):
                if w is not None:
                    w.close()

    def _request_rewriter(self) -> RequestUriRewriter | None:
        if self._rtsp_origin is None:
            return None
        host, port = self._address
        return RequestUriRewriter(
            relay=f"rtsp://{host}:{port}", server=self._rtsp_origin, credentials=self._rtsp_credentials
        )

    async def _receive(self, upstream: asyncio.StreamReader, queue: _Chunks) -> None:
        """The server's bytes as they arrive, stamped; blocks while the link is backed up.
        A redirect ends them (its chunk withheld): the client sees its connection end."""
        watch = RedirectWatch() if self._refuse_redirects else None
        while chunk := await upstream.read(self._shaper._read_size()):
            if watch is not None and (status := watch.feed(chunk)) is not None:
                self.upstream_error = RedirectRefused(status)
                break
            await queue.put((self._shaper._clock(), chunk))
        await queue.put((self._shaper._clock(), b""))

    async def _deliver(self, queue: _Chunks, client: asyncio.StreamWriter) -> None:
        shaper = self._shaper
        profile = shaper.profile
        link = _Link(profile.bandwidth_bps, shaper._clock())
        since_stall_roll = 0
        while True:
            arrived_at, chunk = await queue.get()
            if not chunk:
                return
            # latency from when the chunk left the server, not from when it was dequeued:
            # a queue behind a slow link adds its wait once, not once per chunk
            through_at = link.transmit(len(chunk), arrived_at + shaper._latency())
            await shaper._sleep(max(0.0, through_at - shaper._clock()))
            since_stall_roll += len(chunk)
            while since_stall_roll >= STREAM_STALL_UNIT_BYTES:
                since_stall_roll -= STREAM_STALL_UNIT_BYTES
                if profile.stall_s > 0 and shaper._rng.random() < profile.stall_probability:
                    await shaper._sleep(profile.stall_s)
            client.write(chunk)
            await client.drain()
            now = shaper._clock()
            self._first_at = now if self._first_at is None else self._first_at
            self._last_at = now
            self.delivered_bytes += len(chunk)


async def _forward(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, rewriter: RequestUriRewriter | None
) -> None:
    while chunk := await source.read(_MAX_READ_BYTES):
        sink.write(chunk if rewriter is None else rewriter.feed(chunk))
        await sink.drain()


class _Link:
    """The viewer's downlink as a single queue: a chunk finishes transmitting at
    ``max(link free, chunk arrived) + size / bandwidth``.

    Modelling the queue (rather than "bytes so far / bandwidth since the start") means
    an idle stream earns no credit: a burst after a quiet minute still arrives at the
    link's rate, as it would on a real slow link.
    """

    def __init__(self, bandwidth_bps: float | None, start: float) -> None:
        self._bandwidth_bps = bandwidth_bps
        self._free_at = start

    def transmit(self, size: int, arrived_at: float) -> float:
        """When a chunk of ``size`` bytes that reached the link at ``arrived_at`` is through."""
        if self._bandwidth_bps is None:
            return arrived_at
        self._free_at = max(self._free_at, arrived_at) + size * 8 / self._bandwidth_bps
        return self._free_at


def _ewma(current: float | None, sample: float) -> float:
    return sample if current is None else current + _EWMA_WEIGHT * (sample - current)
