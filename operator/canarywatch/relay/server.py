"""Run the relay on a TCP port and hand back a handle to stop it."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from canarywatch.relay.app import RELAY_KEY, build_app
from canarywatch.relay.config import RelayConfig
from canarywatch.relay.service import Relay

__all__ = ["RelayHandle", "run_relay"]

# Open MJPEG streams end as soon as shutdown starts (see app._close_streams), so
# anything still open after this is a stuck client, not work worth waiting for.
_SHUTDOWN_TIMEOUT_SECONDS = 5.0


class RelayHandle:
    """A running relay: where it listens, its in-process state, and ``stop()``."""

    def __init__(self, runner: web.AppRunner, *, host: str, port: int) -> None:
        self._runner = runner
        self.host = host
        self.port = port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def relay(self) -> Relay:
        """The relay itself, for in-process callers (the demo reads its counters)."""
        return self._runner.app[RELAY_KEY]

    async def stop(self) -> None:
        """Close streams, stop pulling and release the port; safe to call twice."""
        await self._runner.cleanup()

    async def __aenter__(self) -> RelayHandle:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def run_relay(
    config: RelayConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Callable[[], float] = time.time,
) -> RelayHandle:
    """Start the relay; ``port=0`` picks a free port, read it from the handle."""
    runner = web.AppRunner(build_app(config, clock=clock), shutdown_timeout=_SHUTDOWN_TIMEOUT_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound_port = int(runner.addresses[0][1])
    return RelayHandle(runner, host=host, port=bound_port)
