"""``ShapedTcpRelay``: a network profile applied to a TCP stream no HTTP client reads
(RTSP over TCP, read by FFmpeg), over loopback, on shaped (fake) time.

The server's bytes reach the client intact, at the profile's bandwidth, after its
latency; the client's bytes reach the server; a lost connection never reaches it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from faketime import FakeTime
from tcp_stub import tcp_stub

from canarywatch.viewer.network import NetworkProfile, ShapedTcpRelay, Shaper

PAYLOAD = bytes(random.Random(3).getrandbits(8) for _ in range(200_000))


@asynccontextmanager
async def streaming_server() -> AsyncIterator[tuple[int, list[bytes]]]:
    """Answers a request line with ``PAYLOAD`` at loopback speed; keeps the lines it got."""
    requests: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readline())
        writer.write(PAYLOAD)
        await writer.drain()
        writer.close()

    async with tcp_stub(answer) as port:
        yield port, requests


def shaper(fake: FakeTime, **profile: float) -> Shaper:
    return Shaper(
        NetworkProfile("test", **profile),  # type: ignore[arg-type]
        rng=random.Random(1),
        clock=fake.clock,
        sleep=fake.sleep,
    )


async def fetch(host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"DESCRIBE rtsp://cams/acme/0 RTSP/1.0\r\n")
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 30)
    except ConnectionResetError:  # closed with our request unread: nothing came back
        return b""
    finally:
        writer.close()


async def test_the_server_stream_arrives_intact_at_the_profiles_bandwidth_after_its_latency() -> None:
    fake = FakeTime()
    link = shaper(fake, bandwidth_bps=400_000.0, latency_s=0.3)
    async with streaming_server() as (port, requests):
        relay = ShapedTcpRelay(link, "127.0.0.1", port)
        async with relay as (host, relay_port):
            body = await fetch(host, relay_port)
    assert body == PAYLOAD and requests == [b"DESCRIBE rtsp://cams/acme/0 RTSP/1.0\r\n"]
    assert relay.delivered_bytes == len(PAYLOAD)
    # the link's rate on shaped time: 200 kB at 400 kbit/s is 4 s (the first chunk's
    # own transmission ends before delivery is first counted)
    rate = relay.delivered_bytes * 8 / relay.delivery_seconds
    assert 0.9 * 400_000 <= rate <= 1.1 * 400_000, rate
    # the connection's round trip is the hub's measurement, as a stream's connect is
    assert link.estimate.rtt_s == pytest.approx(0.3)


async def test_an_unshaped_profile_passes_the_stream_at_loopback_speed() -> None:
    fake = FakeTime()
    async with streaming_server() as (port, _):
        relay = ShapedTcpRelay(shaper(fake), "127.0.0.1", port)
        async with relay as (host, relay_port):
            assert await fetch(host, relay_port) == PAYLOAD
    assert relay.delivery_seconds == 0.0  # no shaped time passed


async def test_a_lost_connection_never_reaches_the_server() -> None:
    fake = FakeTime()
    async with streaming_server() as (port, requests):
        relay = ShapedTcpRelay(shaper(fake, loss=1.0, loss_timeout_s=2.0), "127.0.0.1", port)
        async with relay as (host, relay_port):
            assert await fetch(host, relay_port) == b""
    assert requests == [] and relay.delivered_bytes == 0


async def test_an_rtsp_relay_names_the_servers_url_in_the_requests_it_forwards() -> None:
    """The client was pointed at the relay, so its Request-URI names the relay's port; the
    server gets the URL the client was asked to read (one stream per camera for it, not
    one per relay)."""
    fake = FakeTime()
    async with streaming_server() as (port, requests):
        relay = ShapedTcpRelay(shaper(fake), "127.0.0.1", port, rtsp_origin="rtsp://cams.example")
        async with relay as (host, relay_port):
            reader, writer = await asyncio.open_connection(host, relay_port)
            writer.write(f"DESCRIBE rtsp://{host}:{relay_port}/acme/0 RTSP/1.0\r\n".encode())
            await writer.drain()
            try:
                assert await asyncio.wait_for(reader.read(), 30) == PAYLOAD
            finally:
                writer.close()
    assert requests == [b"DESCRIBE rtsp://cams.example/acme/0 RTSP/1.0\r\n"]
