"""What a viewer has measured of its link, and the client hints it sends for it (pure).

The Network Information client hints (``ECT``, ``Downlink``, ``RTT``) are derived
from a ``NetworkEstimate`` and rounded and capped the way browsers do.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DOWNLINK_CAP_BPS",
    "MIN_THROUGHPUT_SAMPLE_BYTES",
    "NetworkEstimate",
    "client_hints",
    "effective_connection_type",
]


#: Responses smaller than this give no throughput sample: their transfer time is
#: dominated by scheduling noise, not by the link (a 1 KiB body delayed 10 ms by the
#: event loop would read as 800 kbit/s on loopback). Canary frames and their
#: low-bandwidth renditions are above it.
MIN_THROUGHPUT_SAMPLE_BYTES = 8 * 1024

# Browsers round and cap the values they expose so that they cannot fingerprint a
# connection: downlink to multiples of 25 kbit/s up to 10 Mbit/s, RTT to multiples of
# 25 ms up to 3 s (Chrome's limits). A real hub's hints look exactly like this.
_DOWNLINK_STEP_BPS = 25_000
DOWNLINK_CAP_BPS = 10_000_000
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
        steps = round(min(estimate.downlink_bps, DOWNLINK_CAP_BPS) / _DOWNLINK_STEP_BPS)
        # Mbit/s with at most three decimals: 0.475, 1.5, 10.
        hints["Downlink"] = f"{steps * _DOWNLINK_STEP_BPS / 1e6:.3f}".rstrip("0").rstrip(".")
    if estimate.rtt_s is not None:
        steps = round(min(estimate.rtt_s, _RTT_CAP_S) / _RTT_STEP_S)
        hints["RTT"] = str(round(steps * _RTT_STEP_S * 1000))
    return hints
