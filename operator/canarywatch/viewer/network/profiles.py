"""Network profiles: what impairment a hub viewer's network has (pure).

``NetworkProfile`` describes one (bandwidth, latency ± jitter, request loss, mid-body
stalls); the presets are ``good``, ``poor`` and ``extreme``, or an explicit mapping
from a ``CanaryProbe``'s ``networkProfiles`` (``NetworkProfile.from_spec``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeGuard

from canarywatch.errors import FieldError

__all__ = ["EXTREME", "GOOD", "POOR", "PRESETS", "NetworkProfile", "ProfileError"]


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
