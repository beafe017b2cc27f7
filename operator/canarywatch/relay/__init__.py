"""The reference relay: a real multi-tenant camera relay with switchable leak faults.

It is canarywatch's integration under test (demo and end-to-end target): cameras push
(or are polled for) JPEG frames, viewers fetch snapshots, MJPEG and event thumbnails
with per-tenant bearer tokens, and an admin API offers a kill switch, a simulated
outage and the fault switch. ``Fault`` lists the incident classes it reproduces.
"""

from canarywatch.relay.app import build_app
from canarywatch.relay.config import (
    Fault,
    PullSource,
    RelayConfig,
    RelayConfigError,
    load_relay_config,
)
from canarywatch.relay.server import RelayHandle, run_relay

__all__ = [
    "Fault",
    "PullSource",
    "RelayConfig",
    "RelayConfigError",
    "RelayHandle",
    "build_app",
    "load_relay_config",
    "run_relay",
]
