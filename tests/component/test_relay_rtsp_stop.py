"""The relay's RTSP server stops quietly with a session open: the connection handler
ends as the server tells it to, and nothing lands in the event loop's exception
handler (Python 3.11's stream server called ``exception()`` on the cancelled handler
task, which logged a ``CancelledError`` traceback on every stop mid-session)."""

from __future__ import annotations

import asyncio
from typing import Any

from canarywatch.relay import RelayConfig
from canarywatch.relay.rtsp import RtspServer
from canarywatch.relay.service import Relay


async def test_stopping_the_rtsp_server_mid_session_logs_no_traceback() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        server = RtspServer(Relay(RelayConfig(tenants={"acme-7": "token-acme-7"}, admin_token="admin")))
        await server.start()
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(b"OPTIONS rtsp://127.0.0.1/streams/x/low RTSP/1.0\r\nCSeq: 1\r\n\r\n")
            await writer.drain()
            assert (await reader.readline()).startswith(b"RTSP/1.0 200")
            await reader.readuntil(b"\r\n\r\n")  # the session stays open, waiting for more
            await server.stop()
            assert await reader.read() == b""  # the server ended the connection
        finally:
            writer.close()
        for _ in range(3):  # done callbacks run in the loop passes after the stop
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert reported == [], [f"{c['message']}: {c.get('exception')!r}" for c in reported]
