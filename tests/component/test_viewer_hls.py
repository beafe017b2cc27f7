"""``HlsReader`` against small aiohttp servers, for what a player must get right that the
nginx tier does not exercise: a redirected playlist, a session cookie the CDN sets,
segments on another origin (which must not get the viewer's token), undecodable
segments, and the authorization probe following a granted playlist to a frame.

Segments are real MPEG-TS with H.264 of signed canary frames (encoded here with PyAV).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from contextlib import aclosing

import aiohttp
import av
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from canarywatch.httpclient import client_session
from canarywatch.markers import Decoder, FrameSpec, Keyring, Status, render_frame
from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.transports import ACCESS_GRANTED, AuthzProber, FrameKind, HlsReader, ReceivedFrame

ACME, BRAVO = "acme-7", "bravo-2"  # tenants of the conftest keyring
TOKEN = "token-acme"


def ts_segment(keyring: Keyring, tenant: str, *, frames: int = 10, fps: int = 10) -> bytes:
    """An MPEG-TS segment of H.264 canary frames, rendered now."""
    out = io.BytesIO()
    with av.open(out, "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(fps)}
        for seq in range(frames):
            image = render_frame(FrameSpec(tenant, 0, seq + 1, time.time()), keyring.key(tenant))
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def media_playlist(*segments: str, sequence: int = 0) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1", f"#EXT-X-MEDIA-SEQUENCE:{sequence}"]
    for segment in segments:
        lines += ["#EXTINF:1.0,", segment]
    return "\n".join(lines) + "\n"


def reply(**response: object):  # type: ignore[no-untyped-def]
    """A handler answering every request with ``web.Response(**response)``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(**response)  # type: ignore[arg-type]

    return handler


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with client_session() as s:
        yield s


async def started(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def first(reader: HlsReader, count: int = 1) -> list[ReceivedFrame]:
    frames: list[ReceivedFrame] = []
    async with aclosing(reader.frames()) as stream:
        async for frame in stream:
            frames.append(frame)
            if len(frames) >= count:
                break
    return frames


async def test_a_player_follows_redirects_keeps_the_cdn_cookie_and_keeps_its_token_home(
    session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    segment = ts_segment(keyring, ACME)
    seen: dict[str, dict[str, str]] = {}

    async def cdn_segment(request: web.Request) -> web.StreamResponse:
        seen["cdn"] = dict(request.headers)
        return web.Response(body=segment, content_type="video/mp2t")

    cdn_app = web.Application()
    cdn_app.router.add_get("/seg/0.ts", cdn_segment)
    cdn = await started(cdn_app)

    async def master(request: web.Request) -> web.StreamResponse:
        seen["master"] = dict(request.headers)
        raise web.HTTPFound("/live/acme/index.m3u8")

    async def index(request: web.Request) -> web.StreamResponse:
        response = web.Response(
            text=media_playlist(str(cdn.make_url("/seg/0.ts")), "seg1.ts"),
            content_type="application/vnd.apple.mpegurl",
        )
        response.set_cookie("session", "s3cret")
        return response

    async def own_segment(request: web.Request) -> web.StreamResponse:
        seen["own"] = dict(request.headers)
        if request.cookies.get("session") != "s3cret":
            return web.Response(status=403)
        return web.Response(body=segment, content_type="video/mp2t")

    app = web.Application()
    app.router.add_get("/cams/acme/0.m3u8", master)
    app.router.add_get("/live/acme/index.m3u8", index)
    app.router.add_get("/live/acme/seg1.ts", own_segment)
    app.router.add_get("/live/acme/cdn.m3u8", reply(text=media_playlist(str(cdn.make_url("/seg/0.ts")))))
    origin = await started(app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        # redirected to the media playlist, which sets the session cookie its segment needs
        request = RenderedRequest("GET", str(origin.make_url("/cams/acme/0.m3u8")), headers)
        (frame,) = await asyncio.wait_for(first(HlsReader(session, request, min_reload_s=0.05)), 60)
        assert frame.status == 200 and frame.kind is FrameKind.HLS, frame.meta
        assert frame.source == "/live/acme/seg1.ts" and decoder.decode(frame.body).tenant == ACME
        assert seen["own"]["Authorization"] == f"Bearer {TOKEN}"

        # a segment on another origin gets neither the token nor the origin's cookie
        request = RenderedRequest("GET", str(origin.make_url("/live/acme/cdn.m3u8")), headers)
        (frame,) = await asyncio.wait_for(first(HlsReader(session, request, min_reload_s=0.05)), 60)
        assert frame.status == 200 and decoder.decode(frame.body).tenant == ACME, frame.meta
        assert "Authorization" not in seen["cdn"] and "Cookie" not in seen["cdn"]
    finally:
        await origin.close()
        await cdn.close()


async def test_an_undecodable_segment_is_reported_not_judged(
    session: aiohttp.ClientSession, keyring: Keyring
) -> None:
    app = web.Application()
    app.router.add_get("/i.m3u8", reply(text=media_playlist("0.ts")))
    app.router.add_get("/0.ts", reply(body=b"\x47" + b"\x00" * 4000))
    server = await started(app)
    try:
        reader = HlsReader(session, RenderedRequest("GET", str(server.make_url("/i.m3u8")), {}))
        (frame,) = await asyncio.wait_for(first(reader), 60)
        assert frame.body == b"" and frame.meta["problem"] == "undecodable_video", frame.meta
        assert reader.undecodable == 1
    finally:
        await server.close()


async def test_the_authz_probe_follows_a_granted_playlist_to_a_frame(
    session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    segment = ts_segment(keyring, BRAVO)
    app = web.Application()
    # no tenant check at all: bravo's playlist is served to acme's token
    app.router.add_get(
        "/hls/bravo-2/0.m3u8",
        reply(text=media_playlist("a.ts"), content_type="application/vnd.apple.mpegurl"),
    )
    app.router.add_get("/hls/bravo-2/a.ts", reply(body=segment))
    app.router.add_get("/hls/bravo-2/1.m3u8", reply(text=media_playlist("broken.ts")))
    app.router.add_get("/hls/bravo-2/broken.ts", reply(body=b"not video"))
    # granted, live, and never a segment: the probe moves on and reports the grant
    app.router.add_get("/hls/bravo-2/2.m3u8", reply(text=media_playlist()))
    server = await started(app)
    try:
        requests = [
            RenderedRequest(
                "GET",
                str(server.make_url(f"/hls/bravo-2/{camera}.m3u8")),
                {"Authorization": f"Bearer {TOKEN}"},
                source=f"/hls/bravo-2/{camera}.m3u8",
                tenant=BRAVO,
                camera=str(camera),
            )
            for camera in (0, 1, 2)
        ]
        prober = AuthzProber(session, requests, interval_s=0.05, timeout_s=0.5)
        frames: list[ReceivedFrame] = []

        async def until_camera_1() -> None:
            async with aclosing(prober.frames()) as stream:
                async for frame in stream:
                    frames.append(frame)
                    if frame.meta.get("target_camera") == "2":
                        break

        await asyncio.wait_for(until_camera_1(), 60)
        leaked = [f for f in frames if f.body]
        assert leaked and all(f.kind is FrameKind.PROBE for f in leaked)
        observation = decoder.decode(leaked[0].body)
        assert observation.status is Status.VERIFIED and observation.tenant == BRAVO
        assert leaked[0].meta["target_tenant"] == BRAVO
        for granted in frames[-2:]:  # cameras 1 (undecodable) and 2 (no segment at all)
            assert granted.body == b"" and granted.meta["problem"] == ACCESS_GRANTED, granted.meta
    finally:
        await server.close()
