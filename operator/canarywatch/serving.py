"""Serve one aiohttp application on a TCP port and hand back a handle to stop it.

The relay, the metrics endpoint, the local PagerDuty receiver and the camera fleet all
listen this way: ``port=0`` picks a free port, the handle says which one was bound.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Self

from aiohttp import web
from aiohttp.log import access_logger

__all__ = ["ServedApp", "http_base_url"]


def http_base_url(host: str, port: int) -> str:
    """``http://host:port``, with an IPv6 host in brackets."""
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


class ServedApp:
    """A running aiohttp application: ``host``, the bound ``port``, ``base_url`` and ``stop()``."""

    def __init__(self, runner: web.AppRunner, *, host: str, port: int) -> None:
        self._runner = runner
        self.host = host
        self.port = port

    @classmethod
    async def start(
        cls,
        app: web.Application,
        host: str,
        port: int = 0,
        *,
        shutdown_timeout: float = 60.0,
        access_log: logging.Logger | None = access_logger,
    ) -> Self:
        """Listen on ``host:port`` (0 picks a free port); nothing stays open if that fails.

        ``shutdown_timeout`` bounds how long ``stop()`` waits for open requests;
        ``access_log=None`` logs no line per request.
        """
        runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout, access_log=access_log)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        return cls(runner, host=host, port=int(runner.addresses[0][1]))

    @property
    def app(self) -> web.Application:
        return self._runner.app

    @property
    def base_url(self) -> str:
        return http_base_url(self.host, self.port)

    async def stop(self) -> None:
        """Release the port; safe to call twice."""
        await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
