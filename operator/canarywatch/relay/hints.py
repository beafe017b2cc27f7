"""Decide whether a viewer is on a poor connection, from real HTTP Client Hints.

Hubs and browsers announce their network with the Network Information client hints
(``ECT``, ``Downlink``, ``RTT``) and ``Save-Data``; a relay that wants to spare slow
viewers serves them a smaller variant. That branch is exactly where the 2019 leak
lived, so the decision is explicit and tested on its own.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping

__all__ = [
    "CLIENT_HINT_HEADERS",
    "Quality",
    "QualityRequestError",
    "choose_variant",
]

#: Headers a response's content depends on (``Vary``) and that we ask for (``Accept-CH``).
CLIENT_HINT_HEADERS = ("ECT", "Downlink", "RTT", "Save-Data")

_SLOW_EFFECTIVE_TYPES = frozenset({"slow-2g", "2g", "3g"})
# Below 1 Mbit/s a 1080p JPEG every second no longer fits; above 600 ms round trips a
# snapshot poll visibly lags. Both thresholds are where hubs switch to "low".
_SLOW_DOWNLINK_MBPS = 1.0
_SLOW_RTT_MS = 600.0


class Quality(enum.StrEnum):
    """Which rendition of a frame a viewer gets."""

    ORIGINAL = "original"
    LOW = "low"


class QualityRequestError(ValueError):
    """The ``quality`` query parameter has a value the relay does not know."""


def choose_variant(headers: Mapping[str, str], quality_param: str | None) -> Quality:
    """The rendition for a request: ``?quality=`` wins, else the client hints decide.

    ``headers`` must be case-insensitive (aiohttp's ``CIMultiDictProxy`` is). Malformed
    hint values are ignored rather than rejected: a hint is advice, and a viewer
    with a broken header should still see its camera.
    """
    if quality_param is not None and quality_param != "auto":
        try:
            return Quality(quality_param)
        except ValueError:
            accepted = ", ".join([*(q.value for q in Quality), "auto"])
            raise QualityRequestError(f"unknown quality {quality_param!r}; accepted: {accepted}") from None
    return Quality.LOW if is_slow_connection(headers) else Quality.ORIGINAL


def is_slow_connection(headers: Mapping[str, str]) -> bool:
    """True when any client hint says the viewer's connection is poor."""
    ect = headers.get("ECT")
    if ect is not None and ect.strip().lower() in _SLOW_EFFECTIVE_TYPES:
        return True
    downlink = _parse_number(headers.get("Downlink"))
    if downlink is not None and downlink < _SLOW_DOWNLINK_MBPS:
        return True
    rtt = _parse_number(headers.get("RTT"))
    if rtt is not None and rtt > _SLOW_RTT_MS:
        return True
    save_data = headers.get("Save-Data")
    return save_data is not None and save_data.strip().lower() == "on"


def _parse_number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
