"""Viewer transports against the real reference relay over loopback, and against small
aiohttp servers for what the relay never does (broken MJPEG framing, other origins).

Frames are real signed canary JPEGs, so "whose frame is this" is answered by the codec,
exactly as the viewer will answer it. Shaped time is fake (see ``FakeTime``): the poor
profile's latency and bandwidth are *measured* by the shaper from fake time, which is
what makes its client hints, and therefore the relay's choice of rendition, real.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from faketime import FakeTime

from canarywatch.markers import Decoder, FrameSpec, Keyring, Status, encode_image, render_frame
from canarywatch.relay import Fault, RelayConfig, RelayHandle, run_relay
from canarywatch.viewer.http import RenderedRequest, RequestTemplate
from canarywatch.viewer.network import GOOD, POOR, NetworkProfile, Shaper
from canarywatch.viewer.transports import (
    AuthzProber,
    EventFeedReader,
    FrameKind,
    MjpegReader,
    MultipartParser,
    MultipartPart,
    OversizedPart,
    ReceivedFrame,
    SnapshotPoller,
    boundary_from_content_type,
)

ACME, BRAVO, CHARLIE = "acme-7", "bravo-2", "charlie-3"  # tenants of the conftest keyring
CAMERA = "front-door"  # the same camera name in every home: what the 2019 cache keyed on
ADMIN_TOKEN = "admin-secret"
SLOW_TYPES = {"slow-2g", "2g", "3g"}

SNAPSHOT = RequestTemplate(url="http://relay/v3/devices/{tenant}/{camera}/live.jpg")  # host replaced per test


def token(tenant: str) -> str:
    return f"token-{tenant}"


class UnixClock:
    """The relay's clock (unix seconds), moved by the test."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def relay(
    tenants: tuple[str, ...] = (ACME, BRAVO), clock: Callable[[], float] | None = None, **settings: Any
) -> AsyncIterator[RelayHandle]:
    config = RelayConfig(
        tenants={t: token(t) for t in tenants},
        admin_token=ADMIN_TOKEN,
        snapshot_ttl_seconds=0.0,
        **settings,
    )
    handle = await (run_relay(config, port=0) if clock is None else run_relay(config, port=0, clock=clock))
    async with handle:
        yield handle


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def canary(keyring: Keyring, tenant: str, seq: int, *, camera: int = 1) -> bytes:
    spec = FrameSpec(tenant, camera, seq, 1_700_000_000.0 + seq, 640, 360)
    return encode_image(render_frame(spec, keyring.key(tenant)))


async def push(session: aiohttp.ClientSession, handle: RelayHandle, tenant: str, jpeg: bytes) -> None:
    async with session.put(
        f"{handle.base_url}/v3/devices/{tenant}/{CAMERA}/frame",
        data=jpeg,
        headers={"Authorization": f"Bearer {token(tenant)}", "Content-Type": "image/jpeg"},
    ) as response:
        assert response.status == 204, await response.text()


async def admin(session: aiohttp.ClientSession, handle: RelayHandle, path: str, **body: Any) -> None:
    async with session.post(
        f"{handle.base_url}/v3/admin/{path}", json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as response:
        assert response.status == 200, await response.text()


def request_for(
    handle: RelayHandle, path: str, *, viewer: str, tenant: str | None = None, camera: str = CAMERA
) -> RenderedRequest:
    """A request rendered through the generic adapter, as a configured viewer would."""
    template = RequestTemplate(
        url=f"{handle.base_url}{path}", headers={"Authorization": "Bearer {token}"}, where="test"
    )
    return template.render(tenant=tenant or viewer, camera=camera, token=token(viewer))


def snapshot_request(handle: RelayHandle, *, viewer: str, tenant: str | None = None) -> RenderedRequest:
    return request_for(handle, "/v3/devices/{tenant}/{camera}/live.jpg", viewer=viewer, tenant=tenant)


def shaper_for(profile: NetworkProfile, fake: FakeTime, seed: int = 11) -> Shaper:
    if profile is GOOD:
        # Unshaped: measure loopback in real time, which is what a good network is here.
        return Shaper(GOOD)
    return Shaper(profile, rng=random.Random(seed), clock=fake.clock, sleep=fake.sleep)


async def take(frames: AsyncIterator[ReceivedFrame], count: int) -> list[ReceivedFrame]:
    """The first ``count`` frames; closes the transport's loop (and its response)."""
    taken: list[ReceivedFrame] = []
    async with asyncio.timeout(15), aclosing(frames) as stream:
        async for frame in stream:
            taken.append(frame)
            if len(taken) == count:
                break
    return taken


def tenant_of(decoder: Decoder, frame: ReceivedFrame) -> str | None:
    observation = decoder.decode(frame.body)
    assert observation.status is Status.VERIFIED, observation
    return observation.tenant


# -- snapshots under network profiles --------------------------------------------------


@pytest.mark.parametrize("profile", [POOR, GOOD], ids=lambda p: p.name)
async def test_network_profile_decides_the_rendition_through_measured_hints(
    profile: NetworkProfile, session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    fake = FakeTime(5000.0)
    async with relay() as handle:
        await push(session, handle, ACME, canary(keyring, ACME, 1))
        shaper = shaper_for(profile, fake)
        poller = SnapshotPoller(
            session, snapshot_request(handle, viewer=ACME), interval_s=1.0, shaper=shaper, sleep=fake.sleep
        )
        frames = await take(poller.frames(), 4)
    variants = [f.meta["x-relay-variant"] for f in frames]
    assert all(tenant_of(decoder, f) == ACME for f in frames)
    if profile is POOR:
        # The first request had nothing measured, so no hints: the original. After it,
        # the shaper's own measurement puts the hub on the slow path.
        assert variants == ["original", "low", "low", "low"]
        assert shaper.client_hints()["ECT"] in SLOW_TYPES
        assert float(shaper.client_hints()["Downlink"]) < 1
    else:
        assert variants == ["original"] * 4
        assert shaper.client_hints()["ECT"] == "4g"


@pytest.mark.parametrize("profile", [POOR, GOOD], ids=lambda p: p.name)
async def test_xiaomi_cache_shows_a_poor_hub_another_tenants_camera(
    profile: NetworkProfile, session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    fake = FakeTime(5000.0)
    async with relay(fault=Fault.XIAOMI_2019) as handle:
        await push(session, handle, ACME, canary(keyring, ACME, 1))
        await push(session, handle, BRAVO, canary(keyring, BRAVO, 1))
        # Bravo's hub warms the low-variant cache with bravo's (newer) frame ...
        bravo = SnapshotPoller(
            session,
            snapshot_request(handle, viewer=BRAVO),
            interval_s=1.0,
            shaper=shaper_for(profile, fake, seed=1),
            sleep=fake.sleep,
        )
        await take(bravo.frames(), 3)
        # ... and acme's hub, on the same kind of network, looks at its own camera.
        acme = SnapshotPoller(
            session,
            snapshot_request(handle, viewer=ACME),
            interval_s=1.0,
            shaper=shaper_for(profile, fake, seed=2),
            sleep=fake.sleep,
        )
        seen = [tenant_of(decoder, f) for f in await take(acme.frames(), 3)]
    if profile is POOR:
        assert BRAVO in seen  # another home's camera, provably (its signature verifies)
    else:
        assert seen == [ACME, ACME, ACME]


async def test_poller_yields_status_frames_for_no_frame_and_kill_switch(
    session: aiohttp.ClientSession, keyring: Keyring
) -> None:
    fake = FakeTime(5000.0)
    async with relay() as handle:
        poller = SnapshotPoller(
            session, snapshot_request(handle, viewer=ACME), interval_s=1.0, sleep=fake.sleep
        )
        async with aclosing(poller.frames()) as frames:
            before = await anext(frames)
            await push(session, handle, ACME, canary(keyring, ACME, 1))
            live = await anext(frames)
            await admin(session, handle, "kill", actor="canarywatch", reason="test")
            killed = await anext(frames)
    assert (before.status, before.body, before.meta["error"]) == (404, b"", "no_frame")
    assert live.status == 200 and live.body.startswith(b"\xff\xd8")
    assert (killed.status, killed.body, killed.meta["error"]) == (503, b"", "integration_disabled")
    assert all(f.kind is FrameKind.SNAPSHOT for f in (before, live, killed))
    assert live.source == f"/v3/devices/{ACME}/{CAMERA}/live.jpg"


async def test_an_oversized_snapshot_becomes_an_empty_frame_that_says_so(
    session: aiohttp.ClientSession, keyring: Keyring
) -> None:
    fake = FakeTime(5000.0)
    async with relay() as handle:
        await push(session, handle, ACME, canary(keyring, ACME, 1))
        poller = SnapshotPoller(
            session,
            snapshot_request(handle, viewer=ACME),
            interval_s=1.0,
            max_body_bytes=1000,
            sleep=fake.sleep,
        )
        [frame] = await take(poller.frames(), 1)
    assert (frame.status, frame.body) == (200, b"")
    assert frame.meta["skipped"] == "oversized" and frame.meta["limit_bytes"] == "1000"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_network_errors_are_counted_and_retried_with_backoff(session: aiohttp.ClientSession) -> None:
    fake = FakeTime(5000.0)
    template = RequestTemplate(url=f"http://127.0.0.1:{closed_port()}/snap/{{camera}}?key={{token}}")
    poller = SnapshotPoller(
        session,
        template.render(tenant=ACME, camera="door", token="SECRET-KEY"),
        interval_s=1.0,
        max_backoff_s=8.0,
        sleep=fake.sleep,
        rng=random.Random(3),
    )
    task = asyncio.create_task(take(poller.frames(), 1))
    async with asyncio.timeout(10):
        while poller.errors < 6:
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Capped exponential backoff with equal jitter: each wait between half and all of
    # min(cap, base * 2^(n-1)).
    for attempt, delay in enumerate(fake.sleeps[:6], start=1):
        ceiling = min(8.0, 1.0 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert poller.last_error is not None
    assert "SECRET-KEY" not in poller.last_error and "/snap/door" in poller.last_error


@asynccontextmanager
async def hanging_server() -> AsyncIterator[tuple[TestServer, asyncio.Event, asyncio.Event]]:
    """A server whose answers never finish; tells when a request came and when its
    client went away."""
    arrived, gone = asyncio.Event(), asyncio.Event()

    async def snapshot(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await _wait_for_disconnect(request, gone)
        return web.Response(status=204)

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=b"})
        await response.prepare(request)
        await response.write(b"--b\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\n\r\nJPEG\r\n")
        arrived.set()
        await _wait_for_disconnect(request, gone)
        return response

    app = web.Application()
    app.router.add_get("/snapshot", snapshot)
    app.router.add_get("/stream", stream)
    async with TestServer(app) as server:
        yield server, arrived, gone


async def _wait_for_disconnect(request: web.Request, gone: asyncio.Event) -> None:
    # Depending on the aiohttp version and settings, a client leaving either cancels
    # the handler or only closes its transport; either way is "gone".
    try:
        while request.transport is not None and not request.transport.is_closing():
            await asyncio.sleep(0.01)
    finally:
        gone.set()


def plain_request(server: TestServer, path: str) -> RenderedRequest:
    return RequestTemplate(url=str(server.make_url(path))).render(tenant=ACME, camera="c", token="t")


async def test_cancelling_a_poller_closes_its_request_at_once(session: aiohttp.ClientSession) -> None:
    async with hanging_server() as (server, arrived, gone):
        poller = SnapshotPoller(session, plain_request(server, "/snapshot"), interval_s=1.0, timeout_s=60)
        task = asyncio.create_task(take(poller.frames(), 1))
        await asyncio.wait_for(arrived.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(gone.wait(), 5)
    assert poller.errors == 0  # cancellation is not a network error


async def test_cancelling_an_mjpeg_reader_closes_its_stream(session: aiohttp.ClientSession) -> None:
    async with hanging_server() as (server, arrived, gone):
        reader = MjpegReader(session, plain_request(server, "/stream"), timeout_s=60)
        received: list[ReceivedFrame] = []

        async def consume() -> None:
            async for frame in reader:
                received.append(frame)

        task = asyncio.create_task(consume())
        await asyncio.wait_for(arrived.wait(), 5)
        async with asyncio.timeout(5):
            while not received:
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(gone.wait(), 5)
    assert [f.body for f in received] == [b"JPEG"]


# -- MJPEG --------------------------------------------------------------------------------


async def test_mjpeg_reader_follows_the_relays_stream(
    session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    async with relay() as handle:
        await push(session, handle, ACME, canary(keyring, ACME, 1))
        reader = MjpegReader(
            session, request_for(handle, "/v3/devices/{tenant}/{camera}/stream.mjpg", viewer=ACME)
        )
        async with asyncio.timeout(10), aclosing(reader.frames()) as frames:
            first = await anext(frames)
            await push(session, handle, ACME, canary(keyring, ACME, 2))
            second = await anext(frames)
    for seq, frame in ((1, first), (2, second)):
        observation = decoder.decode(frame.body)
        assert observation.tenant == ACME and observation.payload is not None
        assert observation.payload.seq == seq
        assert frame.kind is FrameKind.MJPEG and frame.status == 200
        assert frame.meta["x-frame-seq"] == str(seq)
        assert frame.meta["x-relay-variant"] == "original"
        assert frame.meta["content-type"] == "image/jpeg"


JPEG_A = b"\xff\xd8AAAA\xff\xd9"
JPEG_B = b"\xff\xd8BB\r\n--not-the-boundary\xff\xd9"

MULTIPART_CASES = {
    "content-length-crlf": (
        "multipart/x-mixed-replace; boundary=frame",
        b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 8\r\n\r\n"
        + JPEG_A
        + b"\r\n--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(JPEG_B)
        + JPEG_B
        + b"\r\n--frame--\r\n",
    ),
    "no-length-bare-lf": (
        "multipart/x-mixed-replace;boundary=frame",
        b"--frame\nContent-Type: image/jpeg\n\n"
        + JPEG_A
        + b"\n--frame\nContent-Type: image/jpeg\n\n"
        + JPEG_B
        + b"\n--frame--\n",
    ),
    "declared-with-dashes-written-without-more": (
        "multipart/x-mixed-replace; boundary=--myboundary",
        b"--myboundary\r\nContent-Type: image/jpeg\r\n\r\n"
        + JPEG_A
        + b"\r\n--myboundary\r\n\r\n"
        + JPEG_B
        + b"\r\n--myboundary--",
    ),
    "declared-with-dashes-written-with-more": (
        "multipart/x-mixed-replace; boundary=--myboundary",
        b"----myboundary\r\nContent-Type: image/jpeg\r\n\r\n"
        + JPEG_A
        + b"\r\n----myboundary\r\n\r\n"
        + JPEG_B
        + b"\r\n----myboundary--",
    ),
    "quoted-boundary": (
        'multipart/x-mixed-replace; boundary="cam frame:1"; charset=x',
        b"--cam frame:1\r\nContent-Length: 8\r\n\r\n"
        + JPEG_A
        + b"\r\n--cam frame:1\r\n\r\n"
        + JPEG_B
        + b"\r\n--cam frame:1--",
    ),
    "boundary-missing-from-content-type": (
        "multipart/x-mixed-replace",
        b"\r\n--ipcamera\r\nContent-Type: image/jpeg\r\n\r\n"
        + JPEG_A
        + b"\r\n--ipcamera\r\nContent-Type: image/jpeg\r\n\r\n"
        + JPEG_B
        + b"\r\n--ipcamera--",
    ),
    "no-header-block": (
        "multipart/x-mixed-replace; boundary=frame",
        b"--frame\r\n" + JPEG_A + b"\r\n--frame\r\n" + JPEG_B + b"\r\n--frame--",
    ),
    "junk-and-no-newline-before-delimiters": (
        "multipart/x-mixed-replace; boundary=frame",
        b"HTTP-ish preamble\r\n\r\n--frame  \r\nContent-Type: image/jpeg\r\n\r\n"
        + JPEG_A
        + b"--frame\r\n\r\n"
        + JPEG_B
        + b"--frame--",
    ),
}


@pytest.mark.parametrize("chunk_size", [1, 7, 1 << 20])
@pytest.mark.parametrize("case", MULTIPART_CASES)
def test_multipart_parser_tolerates_real_world_framing(case: str, chunk_size: int) -> None:
    content_type, raw = MULTIPART_CASES[case]
    parser = MultipartParser(boundary_from_content_type(content_type), max_part_bytes=1024)
    parts = []
    for start in range(0, len(raw), chunk_size):
        parts += parser.feed(raw[start : start + chunk_size])
    assert [p.body for p in parts if isinstance(p, MultipartPart)] == [JPEG_A, JPEG_B]
    assert parser.finished


def test_multipart_parser_resynchronises_after_a_wrong_content_length() -> None:
    raw = (
        b"--f\r\nContent-Length: 4\r\n\r\n"
        + JPEG_A  # longer than announced
        + b"\r\n--f\r\nContent-Length: %d\r\n\r\n" % len(JPEG_B)
        + JPEG_B
        + b"\r\n--f--"
    )
    parts = MultipartParser("f", max_part_bytes=1024).feed(raw)
    assert [p.body for p in parts if isinstance(p, MultipartPart)] == [JPEG_A[:4], JPEG_B]


@pytest.mark.parametrize("chunk_size", [1, 100, 1 << 20])
def test_multipart_parser_skips_oversized_parts_without_buffering_them(chunk_size: int) -> None:
    big = b"\xff\xd8" + b"Z" * 5000
    raw = (
        b"--f\r\nContent-Length: 8\r\n\r\n" + JPEG_A + b"\r\n"
        b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: 5002\r\n\r\n" + big + b"\r\n"
        b"--f\r\nContent-Type: image/jpeg\r\n\r\n" + big + b"\r\n"
        b"--f\r\n\r\n" + JPEG_A + b"\r\n--f--"
    )
    parser = MultipartParser("f", max_part_bytes=1000)
    parts: list[MultipartPart | OversizedPart] = []
    for start in range(0, len(raw), chunk_size):
        parts += parser.feed(raw[start : start + chunk_size])
        assert len(parser._buffer) <= 1000 + chunk_size + 64  # bounded, whatever the part size
    assert [type(p).__name__ for p in parts] == [
        "MultipartPart",
        "OversizedPart",
        "OversizedPart",
        "MultipartPart",
    ]
    announced, unannounced = parts[1], parts[2]
    assert isinstance(announced, OversizedPart) and announced.size == 5002
    # reported once it passed the cap, with the size it had reached then
    assert isinstance(unannounced, OversizedPart) and 1000 < unannounced.size <= 5002


async def test_mjpeg_reader_reports_oversized_parts_and_reconnects_after_eof(
    session: aiohttp.ClientSession,
) -> None:
    connections = 0

    async def stream(request: web.Request) -> web.StreamResponse:
        nonlocal connections
        connections += 1
        response = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=f"})
        await response.prepare(request)
        await response.write(b"--f\r\nContent-Length: 8\r\n\r\n" + JPEG_A + b"\r\n")
        await response.write(b"--f\r\nContent-Length: 4000\r\n\r\n" + b"Z" * 4000 + b"\r\n")
        await response.write(b"--f\r\n\r\n" + JPEG_B + b"\r\n--f")  # the server dies mid-stream
        return response

    app = web.Application()
    app.router.add_get("/stream", stream)
    fake = FakeTime(5000.0)
    async with TestServer(app) as server:
        reader = MjpegReader(session, plain_request(server, "/stream"), max_part_bytes=1000, sleep=fake.sleep)
        frames = await take(reader.frames(), 6)
    assert [f.body for f in frames] == [JPEG_A, b"", JPEG_B] * 2
    assert frames[1].meta["skipped"] == "oversized" and frames[1].meta["part_bytes"] == "4000"
    assert reader.oversized == 2
    assert reader.reconnects == 1 and connections == 2
    assert reader.errors == 0  # a stream that ends is not an error, just a reconnect


async def test_mjpeg_reader_takes_a_single_jpeg_answer_as_one_frame(session: aiohttp.ClientSession) -> None:
    async def snapshot_instead_of_stream(request: web.Request) -> web.Response:
        return web.Response(body=JPEG_A, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/video", snapshot_instead_of_stream)
    fake = FakeTime(5000.0)
    async with TestServer(app) as server:
        reader = MjpegReader(session, plain_request(server, "/video"), sleep=fake.sleep)
        frames = await take(reader.frames(), 2)
    assert [(f.body, f.meta["content-type"]) for f in frames] == [(JPEG_A, "image/jpeg")] * 2


async def test_mjpeg_reader_yields_refusals_and_backs_off(session: aiohttp.ClientSession) -> None:
    async with relay() as handle:
        fake = FakeTime(5000.0)
        reader = MjpegReader(
            session,
            request_for(handle, "/v3/devices/{tenant}/{camera}/stream.mjpg", viewer=ACME, tenant=BRAVO),
            reconnect_base_s=1.0,
            sleep=fake.sleep,
            rng=random.Random(5),
        )
        frames = await take(reader.frames(), 3)
    assert [(f.status, f.body, f.meta.get("error")) for f in frames] == [(403, b"", "forbidden")] * 3
    assert fake.sleeps[1] > fake.sleeps[0] / 2  # backing off, not hammering
    assert min(fake.sleeps) >= 0.5


async def test_mjpeg_reader_reconnects_as_soon_as_its_hub_sees_the_integration_back(
    session: aiohttp.ClientSession, keyring: Keyring
) -> None:
    async def backoff_longer_than_the_test(seconds: float) -> None:
        await asyncio.Event().wait()

    async with relay() as handle:
        await push(session, handle, ACME, canary(keyring, ACME, 1))
        await admin(session, handle, "kill", actor="canarywatch", reason="test")
        hub = Shaper(GOOD)  # one hub: its MJPEG stream and its snapshots share the link
        reader = MjpegReader(
            session,
            request_for(handle, "/v3/devices/{tenant}/{camera}/stream.mjpg", viewer=ACME),
            shaper=hub,
            sleep=backoff_longer_than_the_test,
        )
        poller = SnapshotPoller(session, snapshot_request(handle, viewer=ACME), interval_s=0.05, shaper=hub)
        async with aclosing(reader.frames()) as stream, aclosing(poller.frames()) as snapshots:
            refused = await anext(stream)  # ... and now waiting out its backoff
            assert (await anext(snapshots)).status == 503
            resumed = asyncio.ensure_future(anext(stream))
            await admin(session, handle, "resume", actor="canarywatch")
            await push(session, handle, ACME, canary(keyring, ACME, 2))
            assert (await anext(snapshots)).status == 200
            async with asyncio.timeout(5):
                live = await resumed
    assert (refused.status, refused.meta["error"]) == (503, "integration_disabled")
    assert live.status == 200 and live.body.startswith(b"\xff\xd8")


# -- event feed --------------------------------------------------------------------------


async def test_event_feed_yields_each_new_events_thumbnail_once(
    session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    fake = FakeTime(5000.0)
    async with relay(event_every_frames=1) as handle:
        for seq in (1, 2):
            await push(session, handle, ACME, canary(keyring, ACME, seq))
        reader = EventFeedReader(
            session,
            request_for(handle, "/v3/events", viewer=ACME),
            interval_s=1.0,
            base_url=handle.base_url,
            sleep=fake.sleep,
        )
        async with asyncio.timeout(10), aclosing(reader.frames()) as frames:
            first, second = await anext(frames), await anext(frames)
            await push(session, handle, ACME, canary(keyring, ACME, 3))
            third = await anext(frames)
    assert [f.meta["event_id"] for f in (first, second, third)] == ["1", "2", "3"]
    assert reader.since == 3
    for seq, frame in ((1, first), (2, second), (3, third)):
        assert frame.kind is FrameKind.THUMBNAIL and frame.meta["camera"] == CAMERA
        assert frame.source == f"/v3/events/{seq}/thumbnail.jpg"
        observation = decoder.decode(frame.body)
        assert (
            observation.tenant == ACME and observation.payload is not None and observation.payload.seq == seq
        )


async def test_event_feed_catches_the_wyze_owner_mixup_during_recovery(
    session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    clock, fake = UnixClock(), FakeTime(5000.0)
    tenants = (ACME, BRAVO, CHARLIE)
    async with relay(tenants, clock=clock, fault=Fault.WYZE_2024, event_every_frames=1) as handle:
        for tenant in tenants:
            await push(session, handle, tenant, canary(keyring, tenant, 1))
        await admin(session, handle, "outage", seconds=5)
        clock.now += 6  # the relay is back, warming its caches
        shown: dict[str, list[str | None]] = {}
        for tenant in tenants:
            reader = EventFeedReader(
                session, request_for(handle, "/v3/events", viewer=tenant), interval_s=1.0, sleep=fake.sleep
            )
            thumbnails = await take(reader.frames(), 1)
            shown[tenant] = [tenant_of(decoder, f) for f in thumbnails]
    leaked = [viewer for viewer, owners in shown.items() if any(owner != viewer for owner in owners)]
    assert leaked, shown


async def test_feed_credentials_never_go_to_another_origin(session: aiohttp.ClientSession) -> None:
    seen: dict[str, list[str | None]] = {"feed": [], "local": [], "cdn": []}
    since: list[str | None] = []

    async def cdn_thumbnail(request: web.Request) -> web.Response:
        seen["cdn"].append(request.headers.get("Authorization"))
        return web.Response(body=JPEG_B, content_type="image/jpeg")

    cdn_app = web.Application()
    cdn_app.router.add_get("/t/2.jpg", cdn_thumbnail)
    async with TestServer(cdn_app) as cdn:

        async def events(request: web.Request) -> web.Response:
            seen["feed"].append(request.headers.get("Authorization"))
            since.append(request.query.get("since"))
            return web.json_response(
                [
                    {"id": 1, "camera": "door", "time": 1.5, "thumbnail": "/thumbs/1.jpg"},
                    {"id": "2", "camera": "door", "thumbnail": str(cdn.make_url("/t/2.jpg?sig=abc"))},
                    {"id": None, "thumbnail": "/nope"},
                ]
            )

        async def local_thumbnail(request: web.Request) -> web.Response:
            seen["local"].append(request.headers.get("Authorization"))
            return web.Response(body=JPEG_A, content_type="image/jpeg")

        feed_app = web.Application()
        feed_app.router.add_get("/api/events", events)
        feed_app.router.add_get("/thumbs/1.jpg", local_thumbnail)
        async with TestServer(feed_app) as origin:
            template = RequestTemplate(
                url=str(origin.make_url("/api/events?limit=50")), headers={"Authorization": "Bearer {token}"}
            )
            fake = FakeTime(5000.0)
            reader = EventFeedReader(
                session, template.render(tenant=ACME, camera="", token="T"), interval_s=1.0, sleep=fake.sleep
            )
            frames = await take(reader.frames(), 2)
            # One more poll: the feed repeats itself, the reader does not.
            task = asyncio.create_task(take(reader.frames(), 1))
            async with asyncio.timeout(5):
                while len(since) < 2:
                    await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert [f.body for f in frames] == [JPEG_A, JPEG_B]
    assert frames[0].meta == {
        "content-type": "image/jpeg",
        "event_id": "1",
        "camera": "door",
        "event_time": "1.5",
    }
    assert frames[1].source == "/t/2.jpg"  # no signature in what gets logged
    assert seen["local"] == ["Bearer T"] and seen["cdn"] == [None]
    assert since[0] == "0" and set(since[1:]) == {"2"}  # later polls ask only for what is new
    assert reader.malformed >= 1


# -- authorization probes -------------------------------------------------------------------


@pytest.mark.parametrize("fault", [Fault.NONE, Fault.IDOR])
async def test_authz_probe_finds_another_tenants_camera_only_when_the_check_is_missing(
    fault: Fault, session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    fake = FakeTime(5000.0)
    async with relay(fault=fault) as handle:
        await push(session, handle, BRAVO, canary(keyring, BRAVO, 1))
        prober = AuthzProber(
            session,
            [
                snapshot_request(handle, viewer=ACME, tenant=BRAVO),
                request_for(handle, "/v3/devices/{tenant}/{camera}/stream.mjpg", viewer=ACME, tenant=BRAVO),
            ],
            interval_s=1.0,
            sleep=fake.sleep,
        )
        found: list[ReceivedFrame] = []

        async def collect() -> None:
            async for frame in prober:
                found.append(frame)

        task = asyncio.create_task(collect())
        async with asyncio.timeout(10):
            while sum(prober.answers.values()) < 4:
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert prober.answers[403] >= 2  # the stream path always checks ownership
    if fault is Fault.NONE:
        assert found == [] and prober.denied == sum(prober.answers.values())
    else:
        assert found and all(f.kind is FrameKind.PROBE and f.status == 200 for f in found)
        assert found[0].meta["target_tenant"] == BRAVO and found[0].meta["target_camera"] == CAMERA
        assert tenant_of(decoder, found[0]) == BRAVO
