"""Run the relay on a TCP port and hand back a handle to stop it."""

from __future__ import annotations

import time
from collections.abc import Callable

from canarywatch.relay.app import RELAY_KEY, build_app
from canarywatch.relay.config import RelayConfig
from canarywatch.relay.service import Relay
from canarywatch.serving import ServedApp

__all__ = ["RelayHandle", "run_relay"]

# Open MJPEG streams end as soon as shutdown starts (see app._close_streams), so
# anything still open after this is a stuck client, not work worth waiting for.
_SHUTDOWN_TIMEOUT_SECONDS = 5.0


class RelayHandle(ServedApp):
    """A running relay: where it listens (``base_url``), its in-process state, and
    ``stop()``, which closes streams, stops pulling and releases the port."""

    @property
    def relay(self) -> Relay:
        """The relay itself, for in-process callers (the demo reads its counters)."""
        return self.app[RELAY_KEY]


async def run_relay(
    config: RelayConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Callable[[], float] = time.time,
) -> RelayHandle:
    """Start the relay; ``port=0`` picks a free port, read it from the handle."""
    return await RelayHandle.start(
        build_app(config, clock=clock), host, port, shutdown_timeout=_SHUTDOWN_TIMEOUT_SECONDS
    )
