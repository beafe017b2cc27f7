"""``HlsReader(low_latency=True)`` against a small Low-Latency HLS origin (aiohttp): it
joins at the newest independent part, fetches only parts that start with a keyframe,
and reloads the playlist with ``_HLS_msn``/``_HLS_part`` for the next part, which the
origin holds until that part exists (RFC 8216bis 6.2.5.2).

The parts are real fMP4 fragments of H.264 canary frames (PyAV, one fragment per
keyframe); the relay's own LL-HLS is exercised by the streaming tier.
"""

from __future__ import annotations

import asyncio
import io
import struct
import time
from collections.abc import AsyncIterator
from contextlib import aclosing

import aiohttp
import av
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from canarywatch.httpclient import client_session
from canarywatch.markers import Decoder, FrameSpec, Keyring, render_frame
from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.transports import HlsReader, ReceivedFrame

ACME = "acme-7"
PARTS_PER_SEGMENT = 2
PART_S = 0.2


def fragments(keyring: Keyring, count: int) -> tuple[bytes, list[bytes]]:
    """The init section and ``count`` fragments (each a keyframe and what follows)."""
    out = io.BytesIO()
    options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
    with av.open(out, "w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "2"}
        for seq in range(count * 2):
            image = render_frame(FrameSpec(ACME, 0, seq + 1, time.time()), keyring.key(ACME))
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data, boxes, at = out.getvalue(), [], 0
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        boxes.append((kind, data[at : at + size]))
        at += size
    init = b"".join(box for kind, box in boxes if kind in (b"ftyp", b"moov"))
    pieces: list[bytes] = []
    for kind, box in boxes:
        if kind == b"moof":
            pieces.append(box)
        elif kind == b"mdat" and pieces:
            pieces[-1] += box
    return init, pieces[:count]


class Origin:
    """Publishes one part every ``PART_S`` from its start; holds blocking reloads."""

    def __init__(self, init: bytes, parts: list[bytes]) -> None:
        self.init, self.parts = init, parts
        self.started = time.monotonic()
        self.requests: list[str] = []

    def published(self) -> int:
        return min(len(self.parts), 3 + int((time.monotonic() - self.started) / PART_S))

    def playlist(self) -> str:
        count = self.published()
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:9",
            "#EXT-X-TARGETDURATION:1",
            f"#EXT-X-PART-INF:PART-TARGET={PART_S}",
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.6",
            "#EXT-X-MEDIA-SEQUENCE:0",
            '#EXT-X-MAP:URI="init.mp4"',
        ]
        for n in range(count):
            msn, index = divmod(n, PARTS_PER_SEGMENT)
            independent = ",INDEPENDENT=YES" if index == 0 else ""
            lines.append(f'#EXT-X-PART:DURATION={PART_S},URI="p{n}.m4s"{independent}')
            if index == PARTS_PER_SEGMENT - 1:
                lines += [f"#EXTINF:{PART_S * PARTS_PER_SEGMENT},", f"s{msn}.m4s"]
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p{count}.m4s"')
        return "\n".join(lines) + "\n"

    async def index(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        if "_HLS_msn" in request.query:
            wanted = int(request.query["_HLS_msn"]) * PARTS_PER_SEGMENT + int(
                request.query.get("_HLS_part", 0)
            )
            deadline = time.monotonic() + 3
            while self.published() <= wanted and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        return web.Response(text=self.playlist(), content_type="application/vnd.apple.mpegurl")

    async def part(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        name = request.match_info["name"]
        if name == "init.mp4":
            return web.Response(body=self.init, content_type="video/mp4")
        n = int(name[1:].removesuffix(".m4s"))
        if name.startswith("s") or n >= self.published():
            return web.Response(status=404)
        return web.Response(body=self.parts[n], content_type="video/mp4")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with client_session() as s:
        yield s


async def test_a_low_latency_player_takes_independent_parts_with_blocking_reloads(
    session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    init, parts = fragments(keyring, 40)
    origin = Origin(init, parts)
    app = web.Application()
    app.router.add_get("/ll/index.m3u8", origin.index)
    app.router.add_get("/ll/{name}", origin.part)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        reader = HlsReader(
            session, RenderedRequest("GET", str(server.make_url("/ll/index.m3u8")), {}), low_latency=True
        )
        frames: list[ReceivedFrame] = []
        async with aclosing(reader.frames()) as stream:
            async for frame in stream:
                frames.append(frame)
                if len(frames) >= 4:
                    break
        assert all(f.status == 200 and decoder.decode(f.body).tenant == ACME for f in frames), frames
        # joined at the newest independent part (p2 of the three first published)
        assert [f.meta["part"] for f in frames] == ["0"] * 4 and frames[0].meta["segment"] == "1"
        # only parts with a keyframe, newer each time (one that fell behind skips to the edge)
        fetched = [
            int(r.removeprefix("/ll/p").removesuffix(".m4s")) for r in origin.requests if r.endswith(".m4s")
        ]
        assert fetched[0] == 2 and len(fetched) == 4, origin.requests
        assert all(n % PARTS_PER_SEGMENT == 0 for n in fetched) and fetched == sorted(set(fetched)), fetched
        # after the first load every reload is a blocking one, for the part after the last seen
        reloads = [r for r in origin.requests if r.startswith("/ll/index.m3u8")]
        assert reloads[0] == "/ll/index.m3u8" and reloads[1] == "/ll/index.m3u8?_HLS_msn=1&_HLS_part=1"
        assert all("_HLS_msn=" in r for r in reloads[1:]), reloads
        assert reader.parts == 4
    finally:
        await server.close()


async def test_a_playlist_without_parts_is_watched_by_segments(
    session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    init, parts = fragments(keyring, 2)
    app = web.Application()
    playlist = '#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:0.2,\ns0.m4s\n'
    for path, response in (
        ("/i.m3u8", {"text": playlist}),
        ("/init.mp4", {"body": init}),
        ("/s0.m4s", {"body": parts[0]}),
    ):
        app.router.add_get(path, _reply(response))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        reader = HlsReader(
            session, RenderedRequest("GET", str(server.make_url("/i.m3u8")), {}), low_latency=True
        )
        (frame,) = await asyncio.wait_for(reader.first_frames(max_segments=1), 60)
        assert decoder.decode(frame.body).tenant == ACME and "part" not in frame.meta
    finally:
        await server.close()


def _reply(response: dict[str, object]):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        return web.Response(**response)  # type: ignore[arg-type]

    return handler


async def test_a_player_that_fell_behind_jumps_to_the_newest_independent_part(
    session: aiohttp.ClientSession, keyring: Keyring, decoder: Decoder
) -> None:
    """Ten parts became listed while it was busy: it fetches the newest with a keyframe
    only, as a player jumps to the live edge, so a slow stream does not fall further behind."""
    init, parts = fragments(keyring, 12)
    fetched: list[str] = []

    def playlist(count: int) -> str:
        lines = ["#EXTM3U", "#EXT-X-VERSION:9", "#EXT-X-TARGETDURATION:1", "#EXT-X-PART-INF:PART-TARGET=0.2"]
        lines += ["#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES", '#EXT-X-MAP:URI="init.mp4"']
        for n in range(count):
            independent = ",INDEPENDENT=YES" if n != count - 1 else ""  # the last has no keyframe
            lines.append(f'#EXT-X-PART:DURATION=0.2,URI="p{n}.m4s"{independent}')
        return "\n".join(lines) + "\n"

    async def index(request: web.Request) -> web.Response:
        count = 12 if "_HLS_msn" in request.query else 3
        return web.Response(text=playlist(count), content_type="application/vnd.apple.mpegurl")

    async def part(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        fetched.append(name)
        body = init if name == "init.mp4" else parts[int(name[1:].removesuffix(".m4s"))]
        return web.Response(body=body, content_type="video/mp4")

    app = web.Application()
    app.router.add_get("/ll/index.m3u8", index)
    app.router.add_get("/ll/{name}", part)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        reader = HlsReader(
            session, RenderedRequest("GET", str(server.make_url("/ll/index.m3u8")), {}), low_latency=True
        )
        frames: list[ReceivedFrame] = []
        async with aclosing(reader.frames()) as stream:
            async for frame in stream:
                frames.append(frame)
                if len(frames) >= 2:
                    break
        assert [n for n in fetched if n != "init.mp4"] == ["p1.m4s", "p10.m4s"], fetched
        assert all(decoder.decode(f.body).tenant == ACME for f in frames), [f.meta for f in frames]
    finally:
        await server.close()
