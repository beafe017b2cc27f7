"""``canarywatch bench video``: the rows of the transports that watch over HTTP here —
HTTP progressive MP4 (``mp4``) and Low-Latency HLS (``llhls``) — each as its real
reader (``Mp4Reader``, ``HlsReader(low_latency=True)``) fetching the same 720p stream
from an origin on 127.0.0.1 in this process, every frame judged by the marker decoder.

The origin serves as fast as it is read (the CPU of a stream-second is what is measured,
not wall time): the MP4 as one chunked live body (``frag_keyframe+empty_moov``), the
LL-HLS as one part per fragment published as the reader asks, with blocking reloads.
CPU is the process's (reader, FFmpeg's threads, verdicts and the origin's few writes),
as a ratio to ``ffmpeg -f null`` decoding the same MP4 in the same run.
"""

from __future__ import annotations

import asyncio
import io
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from canarywatch.httpclient import client_session
from canarywatch.markers import Decoder, FrameSpec, Keyring, render_frame
from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.transports import HlsReader, Mp4Reader, ReceivedFrame
from canarywatch.viewer.transports.base import Transport

__all__ = ["TransportRow", "encode_fragmented_mp4", "print_transport_rows", "transport_rows"]

# (label, frames judged, CPU seconds)
TransportRow = tuple[str, Counter[str], float]
Outcome = Callable[[Decoder, bytes], str]


def encode_fragmented_mp4(
    keyring: Keyring, tenant: str, *, width: int, height: int, fps: int, gop_s: float, kbps: int, frames: int
) -> bytes:
    """Canary frames as H.264 in a fragmented MP4, one fragment per GOP (as ffmpeg and an
    LL-HLS packager write live)."""
    import av

    out = io.BytesIO()
    options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
    with av.open(out, "w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = kbps * 1000
        gop = str(round(fps * gop_s))
        stream.options = {"preset": "veryfast", "g": gop, "keyint_min": gop, "sc_threshold": "0"}
        start, key = time.time(), keyring.key(tenant)
        for seq in range(frames):
            image = render_frame(FrameSpec(tenant, 0, seq + 1, start + seq / fps, width, height), key)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def _split(mp4: bytes) -> tuple[bytes, list[bytes]]:
    """The init section (ftyp+moov) and each moof+mdat fragment."""
    init, fragments, at = b"", [], 0
    while at + 8 <= len(mp4):
        size, kind = struct.unpack(">I4s", mp4[at : at + 8])
        box = mp4[at : at + size]
        if kind in (b"ftyp", b"moov"):
            init += box
        elif kind == b"moof":
            fragments.append(box)
        elif kind == b"mdat" and fragments:
            fragments[-1] += box
        at += max(8, size)
    return init, fragments


class _Origin:
    """The MP4 as a live body and as LL-HLS parts, one published per blocking reload."""

    def __init__(self, mp4: bytes) -> None:
        self.mp4 = mp4
        self.init, self.parts = _split(mp4)
        self.published = 1

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/live.mp4", self.live),
            web.get("/ll/index.m3u8", self.playlist),
            web.get("/ll/init.mp4", self.init_section),
            web.get("/ll/{n:\\d+}.m4s", self.part),
        ]

    async def live(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        await response.prepare(request)
        for at in range(0, len(self.mp4), 64 * 1024):
            await response.write(self.mp4[at : at + 64 * 1024])
        return response

    async def playlist(self, request: web.Request) -> web.Response:
        if "_HLS_msn" in request.query:  # the reader waits for the next part: publish it
            self.published = min(len(self.parts), self.published + 1)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:9",
            "#EXT-X-TARGETDURATION:2",
            "#EXT-X-PART-INF:PART-TARGET=2.0",
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES",
            '#EXT-X-MAP:URI="init.mp4"',
        ]
        for n in range(self.published):
            lines += [f'#EXT-X-PART:DURATION=2.0,URI="{n}.m4s",INDEPENDENT=YES', "#EXTINF:2.0,", f"{n}.m4s"]
        if self.published == len(self.parts):
            lines.append("#EXT-X-ENDLIST")
        return web.Response(text="\n".join(lines) + "\n", content_type="application/vnd.apple.mpegurl")

    async def init_section(self, request: web.Request) -> web.Response:
        return web.Response(body=self.init, content_type="video/mp4")

    async def part(self, request: web.Request) -> web.Response:
        return web.Response(body=self.parts[int(request.match_info["n"])], content_type="video/mp4")


async def _watch(reader: Transport, decoder: Decoder, outcome: Outcome, *, until: int) -> Counter[str]:
    """Judge the reader's frames until ``until`` were decoded (or it reports a problem)."""
    outcomes: Counter[str] = Counter()
    frames = reader.frames()
    try:
        async for frame in frames:
            if frame.body:
                outcomes[outcome(decoder, frame.body)] += 1
            else:
                outcomes[frame.meta.get("problem", str(frame.status))] += 1
            if sum(outcomes.values()) >= until or frame.status != 200:
                break
    finally:
        await _close(frames)
    return outcomes


async def _close(frames: AsyncIterator[ReceivedFrame]) -> None:
    close = getattr(frames, "aclose", None)  # an async generator's: closes its connection
    if close is not None:
        await close()


async def _rows(mp4: bytes, decoder: Decoder, outcome: Outcome, keyframes: int) -> list[TransportRow]:
    origin = _Origin(mp4)
    app = web.Application()
    app.add_routes(origin.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rows: list[TransportRow] = []
    try:
        async with client_session() as session:
            for label, reader in (
                ("mp4 (progressive, live fMP4)", Mp4Reader(session, _get(port, "/live.mp4"))),
                (
                    "llhls (parts, blocking reloads)",
                    HlsReader(session, _get(port, "/ll/index.m3u8"), low_latency=True),
                ),
            ):
                started = time.process_time()
                async with asyncio.timeout(600):
                    outcomes = await _watch(reader, decoder, outcome, until=keyframes)
                rows.append((label, outcomes, time.process_time() - started))
    finally:
        await runner.cleanup()
    return rows


def _get(port: int, path: str) -> RenderedRequest:
    return RenderedRequest("GET", f"http://127.0.0.1:{port}{path}", {}, source=path)


def transport_rows(mp4: bytes, decoder: Decoder, outcome: Outcome, *, keyframes: int) -> list[TransportRow]:
    """Each transport's outcomes and CPU watching ``mp4`` (``keyframes`` GOPs long)."""
    return asyncio.run(_rows(mp4, decoder, outcome, keyframes))


def print_transport_rows(
    keyring: Keyring,
    decoder: Decoder,
    outcome: Outcome,
    *,
    tenant: str,
    seconds: int,
    fps: int,
    workdir: Path,
    ffmpeg_cpu: Callable[[Path], float],
) -> int:
    """Print the MP4 and LL-HLS rows (720p, ``fps``, 2 s GOP, 2 Mbit/s, ``seconds`` long)
    with their own ``ffmpeg -f null`` reference; the false attributions seen."""
    mp4 = encode_fragmented_mp4(
        keyring, tenant, width=1280, height=720, fps=fps, gop_s=2.0, kbps=2000, frames=seconds * fps
    )
    path = workdir / "stream.mp4"
    path.write_bytes(mp4)
    reference = ffmpeg_cpu(path)
    keyframes = len(_split(mp4)[1])
    print(f"{'ffmpeg -f null (same stream as fMP4)':<34} {'-':>7} {'-':>13} {reference:7.2f} "
          f"{100 * reference / seconds:6.1f}% {1.0:9.2f}")  # fmt: skip
    false_attributions = 0
    for label, outcomes, cpu in transport_rows(mp4, decoder, outcome, keyframes=keyframes):
        judged = sum(outcomes.values())
        false_attributions += outcomes["FALSE ATTRIBUTION"]
        print(f"{label:<34} {judged:7d} {judged / cpu:13.1f} {cpu:7.2f} "
              f"{100 * cpu / seconds:6.1f}% {cpu / reference:9.2f}")  # fmt: skip
    return false_attributions
