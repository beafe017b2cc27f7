"""``Mp4Reader`` against small aiohttp servers: a live fragmented MP4 and a file decode to
canary frames; hostile answers (an endless ``mdat`` whose ``moov`` never comes, a corrupt
``moov``, noise trickled forever, silence) become a verdict or a counted network error
within the reader's bounds, never a crash or a stall; the token stays with its origin.

The video is real H.264 of signed canary frames (encoded here with PyAV); the real
ffmpeg HTTP server is exercised by tests/streaming/test_mp4_ffmpeg.py.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import AsyncIterator
from contextlib import aclosing

import aiohttp
import av
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cancelling import ignored_cancellations

from canarywatch.httpclient import client_session
from canarywatch.markers import Decoder, FrameSpec, Keyring, render_frame
from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.smarthome import CAMERA_STREAM_TRAIT
from canarywatch.viewer.transports import ACCESS_GRANTED, AuthzProber, FrameKind, Mp4Reader, ReceivedFrame
from canarywatch.viewer.transports.hub import HubViewer

ACME = "acme-7"  # a tenant of the conftest keyring
TOKEN = "token-acme"


def mp4_video(keyring: Keyring, *, seconds: int = 2, fps: int = 10, fragmented: bool = True) -> bytes:
    """H.264 canary frames of ACME's camera 0 as an MP4: fragmented per keyframe with an
    empty moov (what ffmpeg writes live), or a plain file (its moov at the end)."""
    options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"} if fragmented else {}
    out = io.BytesIO()
    with av.open(out, "w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(fps)}
        for seq in range(seconds * fps):
            image = render_frame(FrameSpec(ACME, 0, seq + 1, time.time()), keyring.key(ACME))
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def streamed(chunks: AsyncIterator[bytes] | list[bytes], *, then_hold: bool = True):  # type: ignore[no-untyped-def]
    """A handler that streams ``chunks`` chunked (no Content-Length: a live stream), then
    holds the connection open as a live server does."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        await response.prepare(request)
        if isinstance(chunks, list):
            for chunk in chunks:
                await response.write(chunk)
        else:
            async for chunk in chunks:
                await response.write(chunk)
        if then_hold:
            await asyncio.sleep(3600)
        return response

    return handler


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with client_session() as s:
        yield s


async def serving(routes: dict[str, object]) -> TestServer:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)  # type: ignore[arg-type]
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def first(reader: Mp4Reader, count: int = 1) -> list[ReceivedFrame]:
    frames: list[ReceivedFrame] = []
    async with aclosing(reader.frames()) as stream:
        async for frame in stream:
            frames.append(frame)
            if len(frames) >= count:
                break
    return frames


def request(server: TestServer, path: str, headers: dict[str, str] | None = None) -> RenderedRequest:
    return RenderedRequest("GET", str(server.make_url(path)), headers or {}, source=path)


async def test_a_live_fragmented_mp4_is_judged_keyframe_by_keyframe(
    session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    video = mp4_video(keyring, seconds=3)
    seen: dict[str, str] = {}

    async def live(request: web.Request) -> web.StreamResponse:
        seen["authorization"] = request.headers.get("Authorization", "")
        return await streamed([video[i : i + 4096] for i in range(0, len(video), 4096)])(request)

    server = await serving({"/live/acme/0.mp4": live})
    try:
        reader = Mp4Reader(session, request(server, "/live/acme/0.mp4", {"Authorization": f"Bearer {TOKEN}"}))
        frames = await asyncio.wait_for(first(reader, 3), 60)
        assert [f.meta["pts"] for f in frames] == ["0.000", "1.000", "2.000"], [f.meta for f in frames]
        for frame in frames:
            assert frame.kind is FrameKind.MP4 and frame.status == 200 and frame.meta["mp4"] == "live"
            assert decoder.decode(frame.body).tenant == ACME
        assert seen["authorization"] == f"Bearer {TOKEN}"
    finally:
        await server.close()


async def test_a_plain_mp4_file_is_read_whole_and_fetched_again(
    session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    video = mp4_video(keyring, seconds=2, fragmented=False)
    served = 0

    async def file(request: web.Request) -> web.StreamResponse:
        nonlocal served
        served += 1
        return web.Response(body=video, content_type="video/mp4")

    server = await serving({"/clip.mp4": file})
    try:
        reader = Mp4Reader(session, request(server, "/clip.mp4"), file_interval_s=0.05)
        frames = await asyncio.wait_for(first(reader, 3), 60)  # two keyframes per fetch
        assert all(f.meta["mp4"] == "file" and decoder.decode(f.body).tenant == ACME for f in frames)
        assert served == 2
    finally:
        await server.close()


async def test_an_endless_mdat_whose_moov_never_comes_is_a_verdict_within_the_byte_budget(
    session: aiohttp.ClientSession,
) -> None:
    async def endless() -> AsyncIterator[bytes]:
        # ftyp, then an mdat of size 0 ("to the end of the file"), then media forever
        yield b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00\x00\x00\x00mdat"
        while True:
            yield os.urandom(16384)

    server = await serving({"/endless.mp4": streamed(endless(), then_hold=False)})
    try:
        reader = Mp4Reader(session, request(server, "/endless.mp4"), max_body_bytes=512 * 1024)
        (frame,) = await asyncio.wait_for(first(reader), 60)
        assert frame.body == b"" and frame.status == 200, frame.meta
        assert frame.meta["problem"] == "undecodable_video", frame.meta
        assert reader.undecodable == 1 and "524288 bytes" in frame.meta["undecodable"], frame.meta
    finally:
        await server.close()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda v: v[:40] + b"\xff" * 200 + v[240:], id="corrupt-moov"),
        pytest.param(lambda v: os.urandom(200_000), id="noise"),
        pytest.param(lambda v: v[:1000], id="cut-before-the-first-fragment"),
    ],
)
async def test_a_broken_mp4_is_an_undecodable_verdict_then_reconnected(
    session: aiohttp.ClientSession, keyring: Keyring, damage: object
) -> None:
    video = damage(mp4_video(keyring, seconds=1))  # type: ignore[operator]
    server = await serving({"/broken.mp4": streamed([video], then_hold=False)})
    try:
        reader = Mp4Reader(session, request(server, "/broken.mp4"), reconnect_base_s=0.01, max_backoff_s=0.05)
        frames = await asyncio.wait_for(first(reader, 2), 60)
        for frame in frames:
            assert frame.body == b"" and frame.meta["problem"] == "undecodable_video", frame.meta
        assert reader.reconnects >= 1
    finally:
        await server.close()


async def test_noise_trickled_forever_is_a_verdict_after_the_frame_timeout(
    session: aiohttp.ClientSession,
) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        while True:
            yield os.urandom(64)
            await asyncio.sleep(0.05)

    server = await serving({"/trickle.mp4": streamed(trickle(), then_hold=False)})
    try:
        reader = Mp4Reader(session, request(server, "/trickle.mp4"), frame_timeout_s=1.0)
        (frame,) = await asyncio.wait_for(first(reader), 60)
        assert frame.meta["problem"] == "undecodable_video", frame.meta
        assert "no decodable frame" in frame.meta["undecodable"]
    finally:
        await server.close()


async def test_a_silent_stream_is_a_network_error_not_a_stall(session: aiohttp.ClientSession) -> None:
    server = await serving({"/silent.mp4": streamed([])})
    try:
        reader = Mp4Reader(session, request(server, "/silent.mp4"), timeout_s=0.3, max_backoff_s=0.05)

        async def until_two_errors() -> None:
            async with aclosing(reader.frames()) as stream:
                async for frame in stream:  # pragma: no cover - nothing is yielded
                    raise AssertionError(frame.meta)

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(until_two_errors(), 2.0)
        assert reader.errors >= 2 and reader.last_error == "TimeoutError on /silent.mp4"
    finally:
        await server.close()


async def test_a_refusal_is_yielded_with_its_status_and_the_token_stays_home(
    session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    video = mp4_video(keyring, seconds=1)
    seen: dict[str, str] = {}

    async def elsewhere(request: web.Request) -> web.StreamResponse:
        seen["authorization"] = request.headers.get("Authorization", "")
        return await streamed([video])(request)

    other = await serving({"/video.mp4": elsewhere})

    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(str(other.make_url("/video.mp4")))

    async def forbidden(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "forbidden"}, status=403)

    server = await serving({"/moved.mp4": moved, "/bravo.mp4": forbidden})
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        (frame,) = await asyncio.wait_for(
            first(Mp4Reader(session, request(server, "/bravo.mp4", headers))), 60
        )
        assert frame.status == 403 and frame.body == b"" and frame.meta["error"] == "forbidden"
        (frame,) = await asyncio.wait_for(
            first(Mp4Reader(session, request(server, "/moved.mp4", headers))), 60
        )
        assert decoder.decode(frame.body).tenant == ACME and seen["authorization"] == ""
    finally:
        await server.close()
        await other.close()


async def test_the_authz_probe_follows_a_granted_live_mp4_to_a_frame(
    session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    """An open-read live MP4 (no Content-Length, never ending, as ffmpeg serves it) is
    another tenant's stream granted: the probe judges its first frame instead of timing
    out on a body that never ends."""
    video = mp4_video(keyring, seconds=2)

    async def live(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        await response.write(video)
        await asyncio.sleep(3600)  # live: the body never ends
        return response

    async def noise(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        await response.prepare(request)
        await response.write(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + os.urandom(50_000))
        await asyncio.sleep(3600)
        return response

    server = await serving({"/mp4/acme-7/0.mp4": live, "/mp4/acme-7/1.mp4": noise})
    try:
        requests = [
            RenderedRequest(
                "GET",
                str(server.make_url(f"/mp4/acme-7/{camera}.mp4")),
                {"Authorization": "Bearer token-bravo"},
                source=f"/mp4/acme-7/{camera}.mp4",
                tenant=ACME,
                camera=str(camera),
            )
            for camera in (0, 1)
        ]
        prober = AuthzProber(session, requests, interval_s=0.05, timeout_s=1.0)
        frames: list[ReceivedFrame] = []

        async def until_camera_1() -> None:
            async with aclosing(prober.frames()) as stream:
                async for frame in stream:
                    frames.append(frame)
                    if frame.meta.get("target_camera") == "1":
                        break

        await asyncio.wait_for(until_camera_1(), 60)
        leaked = [f for f in frames if f.body]
        assert leaked and decoder.decode(leaked[0].body).tenant == ACME, [f.meta for f in frames]
        assert leaked[0].kind is FrameKind.PROBE and leaked[0].meta["target_tenant"] == ACME
        granted = frames[-1]  # a live stream granted but never decodable: still a grant
        assert granted.body == b"" and granted.meta["problem"] == ACCESS_GRANTED, granted.meta
        assert prober.errors == 0, prober.last_error
    finally:
        await server.close()


async def test_a_smart_display_handed_a_progressive_mp4_watches_it(
    session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    """Google's GetCameraStream may answer ``progressive_mp4``: the hub viewer watches it
    with ``Mp4Reader``, sending the ``cameraStreamAuthToken`` it was handed."""
    video = mp4_video(keyring, seconds=2)
    asked: dict[str, object] = {}

    async def stream(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer stream-token":
            return web.Response(status=401)
        return await streamed([video])(request)

    async def fulfillment(request: web.Request) -> web.Response:
        body = await request.json()
        intent = body["inputs"][0]["intent"]
        if intent == "action.devices.SYNC":
            device = {
                "id": "cam-0",
                "traits": [CAMERA_STREAM_TRAIT],
                "attributes": {"cameraStreamSupportedProtocols": ["progressive_mp4"]},
            }
            return web.json_response({"payload": {"devices": [device]}})
        asked.update(body["inputs"][0]["payload"]["commands"][0]["execution"][0]["params"])
        states = {
            "cameraStreamAccessUrl": str(request.url.with_path("/streams/cam-0.mp4")),
            "cameraStreamProtocol": "progressive_mp4",
            "cameraStreamAuthToken": "stream-token",
        }
        return web.json_response(
            {"payload": {"commands": [{"ids": ["cam-0"], "status": "SUCCESS", "states": states}]}}
        )

    app = web.Application()
    app.router.add_post("/fulfillment", fulfillment)
    app.router.add_get("/streams/cam-0.mp4", stream)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        request = RenderedRequest(
            "POST", str(server.make_url("/fulfillment")), {"Authorization": f"Bearer {TOKEN}"}
        )
        viewer = HubViewer(session, request, device="cam-0")
        frames: list[ReceivedFrame] = []
        async with aclosing(viewer.frames()) as watched:
            async for frame in watched:
                frames.append(frame)
                break
        (frame,) = frames
        assert frame.kind is FrameKind.HUB and frame.meta["stream_protocol"] == "progressive_mp4", frame.meta
        assert decoder.decode(frame.body).tenant == ACME
        assert "progressive_mp4" in asked["SupportedStreamProtocols"]  # type: ignore[operator]
    finally:
        await server.close()


async def test_an_mp4_viewer_told_to_stop_stops_even_as_a_frame_arrives() -> None:
    """A viewer's task cancelled while a live MP4 pours frames ends, however the
    cancellation falls: also in the loop pass where the reader stops its own helper
    waits (``suppress(CancelledError)`` around that wait absorbed the viewer's own
    cancellation, and the viewer went on watching)."""

    async def pouring() -> AsyncIterator[object]:
        while True:
            await asyncio.sleep(0)
            yield object()

    async with client_session() as session:
        reader = Mp4Reader(
            session, RenderedRequest("GET", "http://127.0.0.1:9/live.mp4", {}, source="/live.mp4")
        )

        async def watch() -> None:
            frames, over_budget = pouring(), asyncio.Event()
            while True:
                await reader._next_frame(frames, over_budget)  # type: ignore[arg-type]

        still_watching = await ignored_cancellations(watch)
    assert still_watching == [], f"cancelled viewers kept watching: attempts {still_watching}"
