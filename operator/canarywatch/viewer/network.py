"""Impaired networks for hub viewers: profiles, an application-level shaper, ``tc netem``.

The 2019 leak reached only hubs on *poor connections*: the integration decided from
the hub's network hints which path (and which cache) to use. A viewer therefore has to
*be* on a poor network, not pretend to be, and has to tell the integration about it
the way a real client does:

- ``NetworkProfile`` describes an impairment (bandwidth, latency ± jitter, request
  loss, mid-body stalls); presets ``good``, ``poor`` and ``extreme``, or an explicit
  mapping from a ``CanaryProbe``'s ``networkProfiles``.
- ``Shaper`` applies a profile to the viewer's own HTTP requests, unprivileged:
  latency before each request, lost requests turning into timeouts, body reads paced
  to the bandwidth, stalls in the middle of bodies. It *measures* the round trips and
  throughput it gets (an EWMA over its own transfers, as browsers' network quality
  estimators do) and sends the Network Information client hints (``ECT``,
  ``Downlink``, ``RTT``) derived from that measurement. Nothing is declared: a viewer
  on the ``poor`` profile is seen as slow because it is slow.
- ``netem_commands`` renders the same profile as ``tc qdisc`` commands for privileged
  runs that want the kernel to do the impairment (a pod with ``NET_ADMIN``).

Client hints before anything is measured: none. Browsers send a default estimate
(typically ``4g``) on their first requests; an integration treats a request without
hints exactly like a fast one (the reference relay serves the original rendition), so
omitting them changes nothing for the integration while never claiming a figure that
was not measured. Each hint appears once its own measurement exists: ``RTT`` and
``ECT`` after the first response, ``Downlink`` after the first response large enough
to time (``MIN_THROUGHPUT_SAMPLE_BYTES``).
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, TypeGuard, TypeVar

from multidict import CIMultiDict, CIMultiDictProxy

from canarywatch.errors import FieldError

if TYPE_CHECKING:  # the profile half of this module is pure; only the shaper needs aiohttp
    import aiohttp

__all__ = [
    "EXTREME",
    "GOOD",
    "MIN_THROUGHPUT_SAMPLE_BYTES",
    "POOR",
    "PRESETS",
    "STREAM_STALL_UNIT_BYTES",
    "NetworkEstimate",
    "NetworkProfile",
    "ProfileError",
    "ShapedResponse",
    "ShapedStream",
    "Shaper",
    "client_hints",
    "effective_connection_type",
    "netem_commands",
]

_T = TypeVar("_T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# -- profiles ---------------------------------------------------------------------


class ProfileError(FieldError):
    """A network profile value is invalid; ``field`` names it (e.g. ``…[2].latency``)."""


@dataclass(frozen=True)
class NetworkProfile:
    """One impairment, applied per request by ``Shaper`` (or by the kernel, see
    ``netem_commands``)."""

    name: str
    #: download bandwidth in bits per second; None = unlimited.
    bandwidth_bps: float | None = None
    #: added round-trip time per request, in seconds.
    latency_s: float = 0.0
    #: the added latency varies uniformly within ± this many seconds.
    jitter_s: float = 0.0
    #: probability that a request is lost: the client hears nothing and times out.
    loss: float = 0.0
    #: probability that a response body stops mid-transfer (for streams: per
    #: ``STREAM_STALL_UNIT_BYTES`` received) ...
    stall_probability: float = 0.0
    #: ... for this many seconds.
    stall_s: float = 0.0
    #: how long a lost request takes to fail; None = the request's own timeout, which
    #: is what a real client waiting for an answer that never comes experiences.
    loss_timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ProfileError("name", "must be a non-empty string")
        if self.bandwidth_bps is not None:
            _check_number("bandwidth", self.bandwidth_bps, low=1.0, inclusive=True)
        _check_number("latency", self.latency_s, low=0.0, inclusive=True)
        _check_number("jitter", self.jitter_s, low=0.0, inclusive=True)
        _check_number("loss", self.loss, low=0.0, high=1.0, inclusive=True)
        _check_number("stall.probability", self.stall_probability, low=0.0, high=1.0, inclusive=True)
        _check_number("stall.seconds", self.stall_s, low=0.0, inclusive=True)
        if self.loss_timeout_s is not None:
            _check_number("lossTimeout", self.loss_timeout_s, low=0.0, inclusive=False)

    @property
    def shapes_anything(self) -> bool:
        """False for a profile that leaves the network as it is (``good``)."""
        return (
            self.bandwidth_bps is not None
            or self.latency_s > 0
            or self.jitter_s > 0
            or self.loss > 0
            or (self.stall_probability > 0 and self.stall_s > 0)
        )

    @classmethod
    def from_spec(cls, value: str | Mapping[str, object], *, where: str) -> NetworkProfile:
        """A preset name (``good``, ``poor``, ``extreme``) or an explicit mapping::

            {bandwidth: "500kbit", latency: "300ms", jitter: "150ms", loss: "2%",
             stall: {probability: 0.05, seconds: "2s"}, lossTimeout: "10s", name: "hub-wifi"}

        Every key of the mapping is optional (absent = no impairment of that kind).
        Errors name ``where`` plus the field, and list what is accepted.
        """
        if isinstance(value, str):
            preset = PRESETS.get(value.strip().lower())
            if preset is None:
                raise ProfileError(where, f"unknown profile {value!r}; accepted: {_ACCEPTED_PROFILES}")
            return preset
        if not isinstance(value, Mapping):
            raise ProfileError(where, f"expected a preset name or a mapping; accepted: {_ACCEPTED_PROFILES}")
        unknown = sorted(str(key) for key in value if key not in _MAPPING_KEYS)
        if unknown:
            raise ProfileError(
                f"{where}.{unknown[0]}", f"unknown setting; accepted: {', '.join(sorted(_MAPPING_KEYS))}"
            )
        name = value.get("name", "custom")
        if not isinstance(name, str) or not name:
            raise ProfileError(f"{where}.name", "expected a non-empty string")
        stall_probability, stall_s = _parse_stall(value.get("stall"), where=f"{where}.stall")
        loss_timeout = value.get("lossTimeout")
        bandwidth_bps = _parse_rate(value.get("bandwidth"), where=f"{where}.bandwidth")
        latency_s = _parse_duration(value.get("latency", 0), where=f"{where}.latency")
        jitter_s = _parse_duration(value.get("jitter", 0), where=f"{where}.jitter")
        loss = _parse_probability(value.get("loss", 0), where=f"{where}.loss")
        loss_timeout_s = (
            None if loss_timeout is None else _parse_duration(loss_timeout, where=f"{where}.lossTimeout")
        )
        try:
            return cls(
                name=name,
                bandwidth_bps=bandwidth_bps,
                latency_s=latency_s,
                jitter_s=jitter_s,
                loss=loss,
                stall_probability=stall_probability,
                stall_s=stall_s,
                loss_timeout_s=loss_timeout_s,
            )
        except ProfileError as error:
            # Range checks in __post_init__ know only the field; say where it lives.
            raise ProfileError(f"{where}.{error.field}", error.message) from None


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)(?:/s)?\s*$", re.IGNORECASE)
_RATE_UNITS = {"bit": 1.0, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def _parse_rate(raw: object, *, where: str) -> float | None:
    if raw is None or (isinstance(raw, str) and raw.strip().lower() == "unlimited"):
        return None
    if _is_number(raw):
        value = float(raw)
    elif isinstance(raw, str) and (match := _RATE.match(raw)):
        value = float(match.group(1)) * _RATE_UNITS[match.group(2).lower()]
    else:
        # "bps"/"kbps" are refused on purpose: tc reads them as *bytes* per second and
        # most people as bits; a factor of 8 in a bandwidth profile is not a typo to guess.
        raise ProfileError(
            where,
            f'expected a rate like "500kbit", "2mbit", "unlimited" or a number of bits per second, '
            f"got {raw!r} (bps/kbps are not accepted: they mean bytes to tc)",
        )
    if not math.isfinite(value) or value < 1:
        raise ProfileError(where, f"must be at least 1 bit per second, got {raw!r}")
    return value


def _parse_duration(raw: object, *, where: str) -> float:
    if _is_number(raw):
        value = float(raw)
    elif isinstance(raw, str) and (match := _DURATION.match(raw)):
        value = float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    else:
        raise ProfileError(
            where, f'expected a duration like "300ms", "2s" or seconds as a number, got {raw!r}'
        )
    if not math.isfinite(value) or value < 0:
        raise ProfileError(where, f"must be a finite duration >= 0, got {raw!r}")
    return value


def _parse_probability(raw: object, *, where: str) -> float:
    if _is_number(raw):
        value = float(raw)
        if not 0.0 <= value <= 1.0:
            hint = f'; write "{raw}%" for a percentage' if 1 < value <= 100 else ""
            raise ProfileError(where, f"must be a probability between 0 and 1, got {raw!r}{hint}")
        return value
    if isinstance(raw, str) and (match := _PERCENT.match(raw)):
        percent = float(match.group(1))
        if percent > 100:
            raise ProfileError(where, f"must be between 0% and 100%, got {raw!r}")
        return percent / 100.0
    raise ProfileError(
        where, f'expected a probability between 0 and 1 (e.g. 0.02) or a percentage ("2%"), got {raw!r}'
    )


def _parse_stall(raw: object, *, where: str) -> tuple[float, float]:
    if raw is None:
        return 0.0, 0.0
    if not isinstance(raw, Mapping):
        raise ProfileError(where, 'expected a mapping {probability: 0.05, seconds: "2s"}')
    unknown = sorted(str(key) for key in raw if key not in ("probability", "seconds"))
    if unknown:
        raise ProfileError(f"{where}.{unknown[0]}", "unknown setting; accepted: probability, seconds")
    for required in ("probability", "seconds"):
        if required not in raw:
            raise ProfileError(f"{where}.{required}", "required when stall is given")
    return (
        _parse_probability(raw["probability"], where=f"{where}.probability"),
        _parse_duration(raw["seconds"], where=f"{where}.seconds"),
    )


def _is_number(raw: object) -> TypeGuard[int | float]:
    # bool is an int subclass; `true` in YAML is never a sensible latency.
    return isinstance(raw, int | float) and not isinstance(raw, bool)


def _check_number(
    field_name: str, value: object, *, low: float, high: float | None = None, inclusive: bool
) -> None:
    if not _is_number(value) or not math.isfinite(value):
        raise ProfileError(field_name, f"expected a finite number, got {value!r}")
    number = float(value)
    too_low = number < low if inclusive else number <= low
    if too_low or (high is not None and number > high):
        bound = f">= {low:g}" if inclusive else f"> {low:g}"
        if high is not None:
            bound += f" and <= {high:g}"
        raise ProfileError(field_name, f"must be {bound}, got {value!r}")


#: No shaping at all: the viewer's real network (loopback in tests, the pod network
#: in a cluster).
GOOD = NetworkProfile(name="good")
#: A hub on weak Wi-Fi: the condition of the 2019 incident.
POOR = NetworkProfile(
    name="poor",
    bandwidth_bps=500_000,
    latency_s=0.300,
    jitter_s=0.150,
    loss=0.02,
    stall_probability=0.03,
    stall_s=2.0,
)
#: A hub at the edge of its network: barely usable, frequent stalls.
EXTREME = NetworkProfile(
    name="extreme",
    bandwidth_bps=150_000,
    latency_s=0.800,
    jitter_s=0.400,
    loss=0.08,
    stall_probability=0.15,
    stall_s=3.0,
)
PRESETS: Mapping[str, NetworkProfile] = {p.name: p for p in (GOOD, POOR, EXTREME)}

_MAPPING_KEYS = frozenset({"name", "bandwidth", "latency", "jitter", "loss", "stall", "lossTimeout"})
_ACCEPTED_PROFILES = (
    f"{', '.join(PRESETS)}, or a mapping with {', '.join(sorted(_MAPPING_KEYS - {'name'}))} (all optional)"
)


# -- client hints (WICG Network Information API) -------------------------------------

#: Responses smaller than this give no throughput sample: their transfer time is
#: dominated by scheduling noise, not by the link (a 1 KiB body delayed 10 ms by the
#: event loop would read as 800 kbit/s on loopback). Canary frames and their
#: low-bandwidth renditions are above it.
MIN_THROUGHPUT_SAMPLE_BYTES = 8 * 1024

# Weight of a new sample in the EWMA: the estimate follows a changed network within a
# handful of requests while one jittery request cannot flip the effective type.
_EWMA_WEIGHT = 0.3

# Browsers round and cap the values they expose so that they cannot fingerprint a
# connection: downlink to multiples of 25 kbit/s up to 10 Mbit/s, RTT to multiples of
# 25 ms up to 3 s (Chrome's limits). A real hub's hints look exactly like this.
_DOWNLINK_STEP_BPS = 25_000
_DOWNLINK_CAP_BPS = 10_000_000
_RTT_STEP_S = 0.025
_RTT_CAP_S = 3.0

# (type, minimum RTT, maximum downlink): the WICG netinfo table, slowest first. A
# connection has the first type whose RTT or downlink threshold it meets.
_ECT_TABLE = (
    ("slow-2g", 2.000, 50_000.0),
    ("2g", 1.400, 70_000.0),
    ("3g", 0.270, 700_000.0),
)


@dataclass(frozen=True)
class NetworkEstimate:
    """What a shaper has measured so far; None = not measured yet."""

    rtt_s: float | None = None
    downlink_bps: float | None = None

    @property
    def effective_type(self) -> str | None:
        return effective_connection_type(rtt_s=self.rtt_s, downlink_bps=self.downlink_bps)


def effective_connection_type(*, rtt_s: float | None, downlink_bps: float | None) -> str | None:
    """``slow-2g``/``2g``/``3g``/``4g`` per the WICG thresholds; None if nothing is known."""
    if rtt_s is None and downlink_bps is None:
        return None
    for name, min_rtt_s, max_downlink_bps in _ECT_TABLE:
        if (rtt_s is not None and rtt_s >= min_rtt_s) or (
            downlink_bps is not None and downlink_bps <= max_downlink_bps
        ):
            return name
    return "4g"


def client_hints(estimate: NetworkEstimate) -> dict[str, str]:
    """The ``ECT``/``Downlink``/``RTT`` request headers for ``estimate``, rounded and
    capped like browsers do; hints with no measurement behind them are left out."""
    hints: dict[str, str] = {}
    ect = estimate.effective_type
    if ect is not None:
        hints["ECT"] = ect
    if estimate.downlink_bps is not None:
        steps = round(min(estimate.downlink_bps, _DOWNLINK_CAP_BPS) / _DOWNLINK_STEP_BPS)
        # Mbit/s with at most three decimals: 0.475, 1.5, 10.
        hints["Downlink"] = f"{steps * _DOWNLINK_STEP_BPS / 1e6:.3f}".rstrip("0").rstrip(".")
    if estimate.rtt_s is not None:
        steps = round(min(estimate.rtt_s, _RTT_CAP_S) / _RTT_STEP_S)
        hints["RTT"] = str(round(steps * _RTT_STEP_S * 1000))
    return hints


# -- the shaper ------------------------------------------------------------------------

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
    #: the body was longer than the caller's ``max_body_bytes``; ``body`` is its start.
    truncated: bool = False


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

    @property
    def estimate(self) -> NetworkEstimate:
        return NetworkEstimate(rtt_s=self._rtt_s, downlink_bps=self._downlink_bps)

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

        A body longer than ``max_body_bytes`` is not read further: the connection is
        closed and the response comes back ``truncated`` with the bytes read so far.
        """
        start = self._clock()
        deadline = start + timeout
        await self._delay(self._latency(), deadline, "latency")
        if self._rng.random() < self.profile.loss:
            await self._lose(deadline, timeout)
        response = await self._io(
            session.request(method, url, headers=self.request_headers(headers), data=body), deadline
        )
        complete = False
        try:
            headers_at = self._clock()
            content_length = response.content_length
            stall_at = self._stall_point(content_length)
            link = _Link(self.profile.bandwidth_bps, headers_at)
            chunks: list[bytes] = []
            received = 0
            truncated = False
            while True:
                chunk = await self._io(response.content.read(self._read_size()), deadline)
                if not chunk:
                    break
                if max_body_bytes is not None and received + len(chunk) > max_body_bytes:
                    truncated = True
                    chunk = chunk[: max_body_bytes - received]
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
        if size >= MIN_THROUGHPUT_SAMPLE_BYTES:
            # A transfer too quick for the clock to see is "faster than any cap".
            sample = size * 8 / transfer_s if transfer_s > 0 else float(_DOWNLINK_CAP_BPS)
            self._downlink_bps = _ewma(self._downlink_bps, min(sample, _DOWNLINK_CAP_BPS))


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
        self.headers = CIMultiDictProxy(CIMultiDict(self._response.headers))
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


# -- tc netem -------------------------------------------------------------------------

_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # IFNAMSIZ is 16 including the NUL
_NETNS = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")


def netem_commands(
    profile: NetworkProfile,
    *,
    interface: str = "eth0",
    namespace: str | None = None,
    ifb: str = "ifb0",
) -> list[list[str]]:
    """The ``tc``/``ip`` commands (argv lists) that impose ``profile`` on ``interface``.

    Only for privileged runs (``NET_ADMIN`` in the viewer pod's network namespace, or
    root on a host with ``namespace`` naming an ``ip netns``); the ``Shaper`` needs no
    privileges and is what tests and the demo use. Run them in order; ``[]`` means the
    profile has nothing to impose. Pass each through ``shlex.join`` to print it.

    - latency, jitter and loss go on the interface's egress (the viewer's requests):
      added there, they lengthen every round trip. Kernel loss drops *packets*, which
      TCP retransmits, so it shows as latency spikes rather than the lost requests the
      ``Shaper`` produces.
    - bandwidth limits what the viewer *receives*, so ingress traffic is redirected to
      an ``ifb`` device and rate-limited on its egress (a qdisc cannot delay ingress).
    - stalls have no netem equivalent; only the ``Shaper`` applies them.
    """
    for argument, name in (("interface", interface), ("ifb", ifb)):
        if not _IFNAME.match(name):
            raise ValueError(
                f"{argument} must be a Linux interface name (1-15 of A-Z a-z 0-9 _ . -), got {name!r}"
            )
    if namespace is not None and not _NETNS.match(namespace):
        raise ValueError(f"namespace must be an ip-netns name (A-Z a-z 0-9 _ . -), got {namespace!r}")
    prefix = [] if namespace is None else ["ip", "netns", "exec", namespace]
    commands: list[list[str]] = []
    egress: list[str] = []
    if profile.latency_s > 0 or profile.jitter_s > 0:
        egress += ["delay", _tc_time(profile.latency_s)]
        if profile.jitter_s > 0:
            egress.append(_tc_time(profile.jitter_s))
    if profile.loss > 0:
        egress += ["loss", f"{profile.loss * 100:g}%"]
    if egress:
        commands.append([*prefix, "tc", "qdisc", "replace", "dev", interface, "root", "netem", *egress])
    if profile.bandwidth_bps is not None:
        commands += [
            [*prefix, "ip", "link", "add", ifb, "type", "ifb"],
            [*prefix, "ip", "link", "set", ifb, "up"],
            [*prefix, "tc", "qdisc", "replace", "dev", interface, "handle", "ffff:", "ingress"],
            [
                *prefix,
                *("tc", "filter", "replace", "dev", interface, "parent", "ffff:", "matchall"),
                *("action", "mirred", "egress", "redirect", "dev", ifb),
            ],
            [
                *prefix,
                *("tc", "qdisc", "replace", "dev", ifb, "root", "netem"),
                *("rate", f"{round(profile.bandwidth_bps)}bit"),
            ],
        ]
    return commands


def _tc_time(seconds: float) -> str:
    # tc parses "300ms" and "1.5ms"; microsecond precision is more than netem keeps.
    return f"{round(seconds * 1e6) / 1e3:g}ms"
