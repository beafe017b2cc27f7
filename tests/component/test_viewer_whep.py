"""``WhepReader`` and the WHEP authorization probe against small aiohttp WHEP endpoints:
a real WebRTC session (the endpoint answers with aiortc and sends canary frames; ICE
between the host's own addresses, signaling on 127.0.0.1) is judged frame by frame; a
refusal is a status, an answer that is not SDP a verdict, never a crash; another
tenant's stream offered to the probe is judged, and an accepted offer with nothing
decodable is ``access_granted``.

The real media server (Pion's whip-whep) is exercised by tests/streaming/test_webrtc_pion.py.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing

import av
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from cancelling import ignored_cancellations

from canarywatch.httpclient import client_session
from canarywatch.markers import Decoder, FrameSpec, Keyring, Status, render_frame
from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.transports import ACCESS_GRANTED, AuthzProber, FrameKind, WhepReader
from canarywatch.viewer.transports.video import Sampling, convert_frame
from canarywatch.webrtc import peer_connection

ACME, BRAVO = "acme-7", "bravo-2"  # tenants of the conftest keyring
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CanaryTrack(MediaStreamTrack):
    """``tenant``'s camera 0, rendered live at 10 fps (aiortc encodes it)."""

    kind = "video"

    def __init__(self, keyring: Keyring, tenant: str) -> None:
        super().__init__()
        self.keyring, self.tenant, self.seq = keyring, tenant, 0

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(0.1)
        self.seq += 1
        spec = FrameSpec(self.tenant, 0, self.seq, time.time(), 320, 180)
        frame = av.VideoFrame.from_ndarray(render_frame(spec, self.keyring.key(self.tenant)), format="bgr24")
        frame.pts, frame.time_base = self.seq * 9000, fractions.Fraction(1, 90000)
        return frame


def whep_endpoint(keyring: Keyring, peers: list[RTCPeerConnection], seen: list[web.Request]) -> Handler:
    """Serves ``/{tenant}/whep`` with that tenant's camera to whoever asks (no token
    check: it is the open-read misconfiguration when another tenant asks)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        pc = peer_connection()
        peers.append(pc)
        pc.addTrack(CanaryTrack(keyring, request.match_info["tenant"]))
        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(
            status=201,
            text=pc.localDescription.sdp,
            headers={"Location": f"/sessions/{len(peers)}"},
            content_type="application/sdp",
        )

    return handler


async def _served(handler: Handler, *, deleted: list[str] | None = None) -> TestServer:
    app = web.Application()
    app.router.add_post("/{tenant}/whep", handler)

    async def delete(request: web.Request) -> web.Response:
        if deleted is not None:
            deleted.append(request.path)
        return web.Response(status=200)

    app.router.add_delete("/sessions/{n}", delete)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_a_webrtc_stream_is_watched_and_judged_frame_by_frame(
    keyring: Keyring, decoder: Decoder
) -> None:
    peers: list[RTCPeerConnection] = []
    seen: list[web.Request] = []
    deleted: list[str] = []
    server = await _served(whep_endpoint(keyring, peers, seen), deleted=deleted)
    try:
        async with client_session() as session:
            url = str(server.make_url(f"/{ACME}/whep"))
            request = RenderedRequest("POST", url, {"Authorization": "Bearer t"}, source=f"/{ACME}/whep")
            reader = WhepReader(session, request, sampling=Sampling(keyframes_only=False, min_interval_s=0.2))
            frames = []
            async with aclosing(reader.frames()) as stream:
                async for frame in stream:
                    frames.append(frame)
                    if len(frames) == 3:
                        break
    finally:
        await asyncio.gather(*(pc.close() for pc in peers))
        await server.close()
    offer = seen[0]
    assert offer.headers["Authorization"] == "Bearer t" and offer.headers["Content-Type"] == "application/sdp"
    for frame in frames:
        assert frame.kind is FrameKind.WHEP and frame.status == 200, frame
        observed = decoder.decode(frame.body)
        assert observed.status is Status.VERIFIED and observed.tenant == ACME, observed
    assert frames[0].meta["codec"] in ("H264", "VP8")
    assert deleted == ["/sessions/1"]  # the session is left as WHEP says


async def test_a_refusal_is_its_status_and_an_answer_that_is_not_sdp_a_verdict() -> None:
    async def refuse(request: web.Request) -> web.Response:
        if request.match_info["tenant"] == "nobody":
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"session": "ok"}, status=201)

    server = await _served(refuse)
    try:
        async with client_session() as session:
            looks = {}
            for tenant in ("nobody", ACME):
                request = RenderedRequest("POST", str(server.make_url(f"/{tenant}/whep")), {}, source="/whep")
                looks[tenant] = await WhepReader(session, request, timeout_s=2).first_frames()
    finally:
        await server.close()
    [refused] = looks["nobody"]
    assert (refused.status, refused.body, refused.meta.get("error")) == (401, b"", "unauthorized")
    [garbled] = looks[ACME]
    assert garbled.status == 200 and garbled.meta["problem"] == "undecodable_video", garbled


async def _probe_round(server: TestServer, target: str) -> tuple[AuthzProber, list[object]]:
    async with client_session() as session:
        request = RenderedRequest(
            "POST",
            str(server.make_url(f"/{target}/whep")),
            {"Authorization": "Bearer bravo-token", "Content-Type": "application/sdp"},
            source=f"/{target}/whep",
            tenant=target,
            camera="0",
        )
        prober = AuthzProber(session, [request], interval_s=0.2, timeout_s=3)

        async def first() -> list[object]:
            async with aclosing(prober.frames()) as frames:
                async for frame in frames:
                    return [frame]
            return []

        try:
            return prober, await asyncio.wait_for(first(), 15)
        except TimeoutError:
            return prober, []


async def test_the_whep_probe_judges_another_tenants_stream_and_counts_refusals(
    keyring: Keyring, decoder: Decoder
) -> None:
    peers: list[RTCPeerConnection] = []

    async def acme_only(request: web.Request) -> web.StreamResponse:
        if request.match_info["tenant"] == "charlie-3":
            return web.Response(status=403)
        if request.match_info["tenant"] == "delta-4":  # granted, then nothing that connects
            return web.Response(status=201, text="v=0\r\nnot a session\r\n", content_type="application/sdp")
        return await whep_endpoint(keyring, peers, [])(request)

    server = await _served(acme_only)
    try:
        prober, refused = await _probe_round(server, "charlie-3")
        assert refused == [] and prober.denied >= 1  # only 403s: nothing to yield
        _, [leaked] = await _probe_round(server, ACME)
        _, [granted] = await _probe_round(server, "delta-4")
    finally:
        await asyncio.gather(*(pc.close() for pc in peers))
        await server.close()
    assert leaked.kind is FrameKind.PROBE and leaked.meta["target_tenant"] == ACME  # type: ignore[attr-defined]
    observed = decoder.decode(leaked.body)  # type: ignore[attr-defined]
    assert observed.status is Status.VERIFIED and observed.tenant == ACME
    assert granted.meta["problem"] == ACCESS_GRANTED and granted.body == b"", granted  # type: ignore[attr-defined]


async def test_a_whip_camera_refused_counts_its_failures_and_publishes_once_accepted(
    keyring: Keyring,
) -> None:
    """The WHIP camera's side: a 401 is a failed session (last_status 401), retried; the
    same endpoint accepting it (an aiortc peer receiving) gets its canary frames."""
    from canarywatch.camera.fleet import CanaryCamera
    from canarywatch.camera.whip import WhipPublisher, WhipTarget
    from canarywatch.retrying import Backoff

    peers: list[RTCPeerConnection] = []
    received: list[av.VideoFrame] = []
    offers: list[web.Request] = []
    readers: list[asyncio.Task[None]] = []

    async def ingest(request: web.Request) -> web.StreamResponse:
        offers.append(request)
        if len(offers) == 1:
            return web.json_response({"error": "unauthorized"}, status=401)
        pc = peer_connection()
        peers.append(pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            async def read() -> None:
                while True:
                    frame = await track.recv()
                    if isinstance(frame, av.VideoFrame):
                        received.append(frame)

            readers.append(asyncio.ensure_future(read()))

        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(status=201, text=pc.localDescription.sdp, content_type="application/sdp")

    app = web.Application()
    app.router.add_post("/{tenant}/{camera}/whip", ingest)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    camera = CanaryCamera(ACME, 0, keyring.key(ACME), width=320, height=180)
    try:
        async with client_session() as session:
            target = WhipTarget(str(server.make_url(f"/{ACME}/0/whip")), {"Authorization": "Bearer t-acme"})
            publisher = WhipPublisher(
                camera, target, session=session, fps=10, backoff=Backoff(base=0.1, cap=0.2)
            )
            task = asyncio.create_task(publisher.run())
            try:
                for _ in range(300):
                    if len(received) >= 5:
                        break
                    await asyncio.sleep(0.05)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.gather(*(pc.close() for pc in peers))
        await server.close()
    assert camera.failed >= 1 and publisher.sessions >= 2
    assert offers[0].headers["Authorization"] == "Bearer t-acme"
    assert offers[1].headers["Content-Type"] == "application/sdp"
    assert len(received) >= 5 and camera.published >= 5
    decoded = Decoder(keyring).decode(convert_frame(received[-1], None, 1280).image)
    assert decoded.status is Status.VERIFIED and decoded.tenant == ACME, decoded


class _PouringTrack(MediaStreamTrack):
    """A track whose frames come as fast as the loop turns: some arrive in the very loop
    pass a cancellation lands in."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.frame = av.VideoFrame(16, 16, "yuv420p")

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(0)
        return self.frame


async def test_a_whep_viewer_told_to_stop_stops_even_as_a_frame_arrives() -> None:
    """A viewer's task cancelled while its track delivers frames ends, however the
    cancellation and a frame's arrival fall (``asyncio.wait_for`` on Python 3.11
    returned the frame and dropped the cancellation: the viewer went on watching and
    ``canarywatch run`` never exited)."""
    sampling = Sampling(keyframes_only=False, min_interval_s=0.0)
    async with client_session() as session:
        request = RenderedRequest("POST", "http://127.0.0.1:9/whep", {}, source="/whep")
        reader = WhepReader(session, request, sampling=sampling)

        async def watch() -> None:
            async with aclosing(reader._track_frames(_PouringTrack(), "H264")) as frames:
                async for _ in frames:
                    pass

        still_watching = await ignored_cancellations(watch)
    assert still_watching == [], f"cancelled viewers kept watching: attempts {still_watching}"
