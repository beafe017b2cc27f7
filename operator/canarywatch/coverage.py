"""Detection power: how fast a probe catches a leak, from the fetch rates it measures (pure).

A leak in the incidents canarywatch exists for touched a *fraction* of what one path
served (the Xiaomi hubs on poor networks, the Wyze thumbnails after an outage). So the
question an SRE asks of a probe is: if a leak shows another tenant's frame on ``p`` of
the fetches of one path under one network profile, within how many seconds does this
probe see it, with what probability? This module answers it, and the reverse: the fetch
rate a probe needs for a target (``p``, a time, a confidence).

The model, stated so the numbers can be trusted:

- Each fetch a viewer makes on the path is leaked independently with probability ``p``
  (a Bernoulli trial). A leak that hits some viewers always and others never is a
  different, easier case: the first fetch of a hit viewer shows it.
- A fetch rate ``r`` (all viewer streams of that path and profile together, as measured)
  gives ``floor(r * t)`` fetches in ``t`` seconds, shared equally by ``streams`` streams.
- An incident needs ``k`` leaked frames among the last ``n`` frames of one stream (the
  response policy's confirmation; 1 of 1 for ``cross_tenant``: one frame is proof). For
  ``k = 1`` the result is exact. For ``k > 1`` it is a lower bound: a stream's fetches
  are cut into disjoint windows of ``n`` and only a window holding ``k`` leaks counts.

Every figure is therefore one canarywatch can promise, never an optimistic one. The time
from the leaked frame to the incident (milliseconds, ``canarywatch_detection_seconds``)
is not included.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from canarywatch.errors import FieldError

__all__ = [
    "DEFAULT_TARGET",
    "MAX_FETCHES",
    "CoverageError",
    "CoverageMeter",
    "CoverageTarget",
    "FetchCounts",
    "PathCoverage",
    "assess",
    "detection_probability",
    "detection_seconds",
    "fetch_counts",
    "fetch_rates",
    "required_fetch_rate",
    "summarize",
]

# Past a billion fetches a target is out of reach for any probe; searching further
# only burns CPU, and "never" is the honest answer.
MAX_FETCHES = 10**9


class CoverageError(FieldError):
    """A coverage target or a rate is out of range; ``field`` names it."""


@dataclass(frozen=True)
class CoverageTarget:
    """What a probe must be able to catch: a leak on ``leak_rate`` of a path's fetches,
    within ``detect_within_seconds``, with probability at least ``confidence``."""

    leak_rate: float
    detect_within_seconds: float
    confidence: float = 0.99

    def __post_init__(self) -> None:
        _check_fraction("leakRate", self.leak_rate)
        _check_fraction("confidence", self.confidence)
        seconds = self.detect_within_seconds
        if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0):
            raise CoverageError("detectWithinSeconds", f"must be a number of seconds > 0, got {seconds!r}")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None, where: str = "coverageTarget") -> CoverageTarget:
        """``{leakRate, detectWithinSeconds, confidence}`` (a CanaryProbe's ``spec.coverageTarget``)."""
        spec = spec or {}
        try:
            return cls(
                leak_rate=spec.get("leakRate", DEFAULT_TARGET.leak_rate),
                detect_within_seconds=spec.get("detectWithinSeconds", DEFAULT_TARGET.detect_within_seconds),
                confidence=spec.get("confidence", DEFAULT_TARGET.confidence),
            )
        except CoverageError as error:
            raise error.within(where) from None


@dataclass(frozen=True)
class PathCoverage:
    """One path under one network profile, as the probe measured it, against a target."""

    path: str
    network_profile: str
    fetches_per_second: float
    streams: int
    target: CoverageTarget
    probability: float  # of detecting the target's leak within its time
    seconds: float  # to detect it with the target's confidence (inf: never)
    required_fetches_per_second: float

    @property
    def sufficient(self) -> bool:
        return self.probability >= self.target.confidence

    @property
    def shortfall(self) -> float:
        """Fetches per second the path lacks to meet the target: 0 when it does, inf when
        no rate would (the target is out of reach)."""
        if self.sufficient:
            return 0.0
        return max(0.0, self.required_fetches_per_second - self.fetches_per_second)

    def to_status(self) -> dict[str, Any]:
        """The CanaryProbe ``status.coverage[]`` entry (and standalone's summary)."""
        return {
            "path": self.path,
            "networkProfile": self.network_profile,
            "fetchesPerSecond": round(self.fetches_per_second, 3),
            "streams": self.streams,
            "detectSeconds": None if math.isinf(self.seconds) else round(self.seconds, 1),
            "probability": round(self.probability, 4),
            "requiredFetchesPerSecond": None
            if math.isinf(self.required_fetches_per_second)
            else round(self.required_fetches_per_second, 3),
            "sufficient": self.sufficient,
            "statement": self.statement(),
        }

    def statement(self) -> str:
        """The sentence for a status or a README: what the probe can promise."""
        t = self.target
        where = f"the {self.network_profile}-network {self.path} path"
        if math.isinf(self.seconds):
            rate = _percent(t.leak_rate)
            return f"a leak affecting {rate} of fetches on {where} is never detected: no fetches"
        return (
            f"a leak affecting {_percent(t.leak_rate)} of fetches on {where} is detected within "
            f"{_duration(self.seconds)} with {_percent(t.confidence)} probability"
        )


@dataclass(frozen=True)
class FetchCounts:
    """Frames a probe's viewers had received by ``at``, per (path, network profile), and
    how many viewer streams (tenant, camera) each came from."""

    at: float
    frames: Mapping[tuple[str, str], float] = field(default_factory=dict)
    streams: Mapping[tuple[str, str], int] = field(default_factory=dict)


def fetch_counts(
    samples: Iterable[tuple[str, Mapping[str, str], float]], *, probe: str, at: float
) -> FetchCounts:
    """``FetchCounts`` from metric samples ``(name, labels, value)`` of one or more viewers'
    ``/metrics`` (summed): ``canarywatch_frames_total`` counts the frames, and
    ``canarywatch_viewer_last_frame_timestamp_seconds`` names each stream's camera."""
    frames: dict[tuple[str, str], float] = {}
    streams: dict[tuple[str, str], set[tuple[str, str, str]]] = {}
    for name, labels, value in samples:
        if labels.get("probe") != probe or "path" not in labels:
            continue
        key = (labels["path"], labels.get("network_profile", ""))
        if name == "canarywatch_frames_total":
            frames[key] = frames.get(key, 0.0) + value
        elif name == "canarywatch_viewer_last_frame_timestamp_seconds":
            stream = (labels.get("tenant", ""), labels.get("camera", ""), labels.get("instance", ""))
            streams.setdefault(key, set()).add(stream)
    return FetchCounts(at, frames, {k: len(v) for k, v in streams.items()})


def fetch_rates(before: FetchCounts | None, now: FetchCounts) -> list[tuple[str, str, float, int]]:
    """``(path, network_profile, fetches_per_second, streams)`` between two counts; a
    count that went down (a viewer restarted) counts from zero, as Prometheus' rate does."""
    if before is None or now.at <= before.at:
        return []
    seconds = now.at - before.at
    rates = []
    for key, count in sorted(now.frames.items()):
        delta = count - before.frames.get(key, 0.0)
        if delta < 0:
            delta = count
        rates.append((key[0], key[1], delta / seconds, max(1, now.streams.get(key, 1))))
    return rates


class CoverageMeter:
    """Each probe's fetch counts from one summary to the next, assessed against its target:
    the one place both shells (operator summaries, standalone runs) get coverage from."""

    def __init__(self) -> None:
        self._last: dict[str, FetchCounts] = {}

    def update(
        self, probe: str, counts: FetchCounts, target: CoverageTarget, *, frames: int = 1, of_last: int = 1
    ) -> list[PathCoverage] | None:
        """The coverage since the last update of ``probe``; None on its first one."""
        before, self._last[probe] = self._last.get(probe), counts
        if before is None or counts.at <= before.at:
            return None
        return assess(fetch_rates(before, counts), target, frames=frames, of_last=of_last)

    def forget(self, probe: str) -> None:
        self._last.pop(probe, None)


def summarize(rows: Iterable[PathCoverage]) -> str:
    """The weakest path in a few words (``39 s (mjpeg/poor)``), for a printer column."""
    ranked = sorted(rows, key=lambda r: (r.seconds, r.path, r.network_profile))
    if not ranked:
        return "not measured yet"
    worst = ranked[-1]
    where = f"({worst.path}/{worst.network_profile})"
    if math.isinf(worst.seconds):
        return f"never {where}"
    short = "" if worst.sufficient else "; too slow for the target"
    return f"{_duration(worst.seconds)} {where}{short}"


def detection_probability(
    *,
    fetches_per_second: float,
    leak_rate: float,
    seconds: float,
    frames: int = 1,
    of_last: int = 1,
    streams: int = 1,
) -> float:
    """A lower bound (exact for ``frames == 1``) on the probability that a leak on
    ``leak_rate`` of the fetches opens an incident within ``seconds``."""
    _check_rate(fetches_per_second)
    _check_fraction("leakRate", leak_rate)
    _check_confirmation(frames, of_last, streams)
    if seconds <= 0 or fetches_per_second == 0:
        return 0.0
    fetches = min(MAX_FETCHES, math.floor(fetches_per_second * seconds + 1e-9))
    return _power(fetches, leak_rate, frames, of_last, streams)


def detection_seconds(
    *,
    fetches_per_second: float,
    leak_rate: float,
    confidence: float,
    frames: int = 1,
    of_last: int = 1,
    streams: int = 1,
) -> float:
    """Seconds until a leak on ``leak_rate`` of the fetches has opened an incident with
    probability at least ``confidence`` (``inf`` when no fetches, or out of reach)."""
    _check_rate(fetches_per_second)
    _check_fraction("leakRate", leak_rate)
    _check_fraction("confidence", confidence)
    _check_confirmation(frames, of_last, streams)
    if fetches_per_second == 0:
        return math.inf
    fetches = _fetches_needed(leak_rate, confidence, frames, of_last, streams)
    return math.inf if fetches is None else fetches / fetches_per_second


def required_fetch_rate(
    target: CoverageTarget, *, frames: int = 1, of_last: int = 1, streams: int = 1
) -> float:
    """The fetch rate (per second, all streams of the path together) that meets ``target``."""
    _check_confirmation(frames, of_last, streams)
    fetches = _fetches_needed(target.leak_rate, target.confidence, frames, of_last, streams)
    return math.inf if fetches is None else fetches / target.detect_within_seconds


def assess(
    measured: Iterable[tuple[str, str, float, int]],
    target: CoverageTarget,
    *,
    frames: int = 1,
    of_last: int = 1,
) -> list[PathCoverage]:
    """``measured`` as ``(path, network_profile, fetches_per_second, streams)``: each
    against ``target``, sorted by path and profile."""
    result = []
    for path, profile, rate, streams in sorted(measured):
        confirmation = {"frames": frames, "of_last": of_last, "streams": streams}
        result.append(
            PathCoverage(
                path=path,
                network_profile=profile,
                fetches_per_second=rate,
                streams=streams,
                target=target,
                probability=detection_probability(
                    fetches_per_second=rate,
                    leak_rate=target.leak_rate,
                    seconds=target.detect_within_seconds,
                    **confirmation,
                ),
                seconds=detection_seconds(
                    fetches_per_second=rate,
                    leak_rate=target.leak_rate,
                    confidence=target.confidence,
                    **confirmation,
                ),
                required_fetches_per_second=required_fetch_rate(target, **confirmation),
            )
        )
    return result


# -- the arithmetic ---------------------------------------------------------------------


def _power(fetches: int, p: float, k: int, n: int, streams: int) -> float:
    """P(some stream confirms) for ``fetches`` shared by ``streams`` streams (lower bound)."""
    per_stream = fetches // streams
    extra = fetches - per_stream * streams  # streams that got one fetch more
    miss = (1.0 - _stream_power(per_stream, p, k, n)) ** (streams - extra)
    miss *= (1.0 - _stream_power(per_stream + 1, p, k, n)) ** extra
    return min(1.0, max(0.0, 1.0 - miss))


def _stream_power(fetches: int, p: float, k: int, n: int) -> float:
    """P(one stream with ``fetches`` fetches confirms): exact for k = 1, else a lower bound."""
    if fetches < k:
        return 0.0
    if k == 1:
        return -math.expm1(fetches * math.log1p(-p))
    if fetches <= n:
        return _at_least(fetches, p, k)
    windows = fetches // n
    per_window = _at_least(n, p, k)
    return -math.expm1(windows * math.log1p(-per_window)) if per_window < 1.0 else 1.0


def _at_least(trials: int, p: float, k: int) -> float:
    """P(Binomial(trials, p) >= k), in logs so tiny p and large trials stay exact: the
    upper tail summed directly when it is small (``1 - P(< k)`` would be rounding noise
    there), the complement otherwise."""
    log_p, log_q = math.log(p), math.log1p(-p)

    def term(i: int) -> float:
        log_choose = math.lgamma(trials + 1) - math.lgamma(i + 1) - math.lgamma(trials - i + 1)
        return math.exp(log_choose + i * log_p + (trials - i) * log_q)

    if k > trials * p:  # past the mean: the terms from k on fall at least geometrically
        tail, i = 0.0, k
        while i <= trials:
            t = term(i)
            tail += t
            if t <= tail * 1e-17:
                break
            i += 1
        return min(1.0, tail)
    return min(1.0, max(0.0, 1.0 - sum(term(i) for i in range(k))))


def _fetches_needed(p: float, confidence: float, k: int, n: int, streams: int) -> int | None:
    """The fewest fetches whose detection probability reaches ``confidence``."""
    if _power(MAX_FETCHES, p, k, n, streams) < confidence:
        return None
    low, high = 0, 1
    while _power(high, p, k, n, streams) < confidence:
        low, high = high, min(MAX_FETCHES, high * 2)
    while high - low > 1:  # the power never falls as fetches grow: bisect
        mid = (low + high) // 2
        if _power(mid, p, k, n, streams) >= confidence:
            high = mid
        else:
            low = mid
    return high


def _check_fraction(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0 < value < 1):
        raise CoverageError(name, f"must be a fraction between 0 and 1 (exclusive), got {value!r}")


def _check_rate(rate: float) -> None:
    if not (isinstance(rate, int | float) and math.isfinite(rate) and rate >= 0):
        raise CoverageError("fetchesPerSecond", f"must be a finite rate >= 0, got {rate!r}")


def _check_confirmation(frames: int, of_last: int, streams: int) -> None:
    if not 1 <= frames <= of_last:
        raise CoverageError("confirmation", f"needs 1 <= frames <= ofLast, got {frames} of {of_last}")
    if streams < 1:
        raise CoverageError("streams", f"must be >= 1, got {streams}")


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.4g} %"


def _duration(seconds: float) -> str:
    whole = math.ceil(seconds)
    if whole < 120:
        return f"{whole} s"
    if whole < 7200:
        return f"{math.ceil(whole / 60)} min"
    return f"{math.ceil(whole / 3600)} h"


# What a probe is measured against when its spec names no target: the Xiaomi leak's
# shape (a small share of one path's fetches), caught within a minute, nearly surely.
DEFAULT_TARGET = CoverageTarget(leak_rate=0.01, detect_within_seconds=60.0, confidence=0.99)
