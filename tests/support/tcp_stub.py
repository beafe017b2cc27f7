"""A TCP server on 127.0.0.1 that answers each connection with a coroutine of the test's
(a stub RTSP server: a hostile one, a strict one), closed when the context ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["tcp_stub"]

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def tcp_stub(answer: Answer) -> AsyncIterator[int]:
    """Serves ``answer`` on a free port of 127.0.0.1; yields the port."""
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
