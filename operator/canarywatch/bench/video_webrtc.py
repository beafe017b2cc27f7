"""``canarywatch bench video``: the WHEP rows — a live WebRTC stream watched by the real
``WhepReader``, and the capture → verdict latency its frames show.

WebRTC cannot be read faster than real time, so the stream is live: a WHEP origin in a
child process (its encoder's CPU is not the viewer's) renders a canary camera at 720p,
``fps``, 2 s GOP, 2 Mbit/s (``camera.whip.CameraTrack``, the WHIP cameras' own encoder)
and answers the reader's offer with aiortc on 127.0.0.1. The parent's CPU (aiortc's
receive, SRTP and decoding threads, the conversion of sampled frames, the verdicts) is
measured from the first frame for ``seconds`` of wall time, as a share of one core and
as a ratio to ``ffmpeg -f null`` decoding the same kind of stream (the caller's
reference, CPU per stream-second). Latency is the verdict's wall-clock time minus the
capture time the marker carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections import Counter

from canarywatch.markers import Decoder, Keyring, Observation, Status
from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.transports.video import Sampling

__all__ = ["print_whep_rows"]

_WIDTH, _HEIGHT, _KBPS, _GOP_S = 1280, 720, 2000, 2.0


def serve_origin() -> None:  # pragma: no cover - the child process
    """The WHEP origin: reads ``{keyring, tenant, fps}`` from a line of stdin, prints its
    port, serves ``POST /whep`` with the camera's track until stdin closes."""
    setup = json.loads(sys.stdin.readline())
    asyncio.run(_origin(Keyring.from_json(setup["keyring"]), setup["tenant"], int(setup["fps"])))


async def _origin(keyring: Keyring, tenant: str, fps: int) -> None:  # pragma: no cover
    from aiohttp import web
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from canarywatch.camera.fleet import CanaryCamera
    from canarywatch.camera.whip import CameraTrack
    from canarywatch.webrtc import only_codec, peer_connection

    peers: list[RTCPeerConnection] = []
    camera = CanaryCamera(tenant, 0, keyring.key(tenant), width=_WIDTH, height=_HEIGHT)

    async def whep(request: web.Request) -> web.Response:
        pc = peer_connection()
        peers.append(pc)
        track = CameraTrack(camera, fps=fps, keyframe_interval=_GOP_S, bitrate=_KBPS * 1000)
        only_codec(pc.addTransceiver(track, direction="sendonly"), "video/H264")
        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(status=201, text=pc.localDescription.sdp, content_type="application/sdp")

    app = web.Application()
    app.router.add_post("/whep", whep)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
    await asyncio.gather(*(pc.close() for pc in peers))
    await runner.cleanup()


async def _watch(
    port: int, decoder: Decoder, *, tenant: str, sampling: Sampling, seconds: float
) -> tuple[Counter[str], float, list[float]]:
    """Judge the stream for ``seconds`` from its first frame: outcomes, CPU, latencies."""
    from contextlib import aclosing

    from canarywatch.httpclient import client_session
    from canarywatch.viewer.transports.whep import WhepReader

    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    started_cpu = started_wall = 0.0
    async with client_session() as session:
        request = RenderedRequest("POST", f"http://127.0.0.1:{port}/whep", {}, source="/whep")
        reader = WhepReader(session, request, sampling=sampling)
        # a stream that never connects is a row of 0 judged, not a hang
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds + 60), aclosing(reader.frames()) as frames:
                async for frame in frames:
                    if not started_wall:
                        started_cpu, started_wall = time.process_time(), time.monotonic()
                        continue  # the first frame carries the connection's setup
                    if not frame.body:
                        outcomes[frame.meta.get("problem", str(frame.status))] += 1
                    else:
                        observation = decoder.decode(frame.body)
                        outcomes[_label(observation, tenant)] += 1
                        if observation.payload is not None and observation.status is Status.VERIFIED:
                            latencies.append(time.time() - observation.payload.time)
                    if time.monotonic() - started_wall >= seconds:
                        break
    return outcomes, (time.process_time() - started_cpu) if started_wall else 0.0, latencies


def _label(observation: Observation, tenant: str) -> str:
    # as ``bench.video``'s outcomes: verified as this camera, or a false attribution
    if observation.status is not Status.VERIFIED:
        return observation.status.value
    right = (
        observation.tenant == tenant and observation.payload is not None and observation.payload.camera == 0
    )
    return "verified" if right else "FALSE ATTRIBUTION"


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def print_whep_rows(
    keyring: Keyring,
    decoder: Decoder,
    *,
    tenant: str,
    seconds: int,
    fps: int,
    reference_cpu_per_s: float,
) -> int:
    """Print the WHEP rows (judged two a second, and every frame) and their capture →
    verdict latency; the false attributions seen."""
    origin = subprocess.Popen(
        [sys.executable, "-c", "from canarywatch.bench.video_webrtc import serve_origin; serve_origin()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert origin.stdin is not None and origin.stdout is not None
    false_attributions = 0
    latency_rows: list[tuple[str, list[float]]] = []
    try:
        origin.stdin.write(json.dumps({"keyring": keyring.to_json(), "tenant": tenant, "fps": fps}) + "\n")
        origin.stdin.flush()
        port = int(origin.stdout.readline())
        for label, sampling in (
            ("whep (WebRTC, 2 judged/s)", Sampling(keyframes_only=False, min_interval_s=0.5)),
            ("whep (WebRTC, every frame)", Sampling(keyframes_only=False, min_interval_s=0.0)),
        ):
            outcomes, cpu, latencies = asyncio.run(
                _watch(port, decoder, tenant=tenant, sampling=sampling, seconds=seconds)
            )
            judged = sum(outcomes.values())
            false_attributions += outcomes["FALSE ATTRIBUTION"]
            ratio = (cpu / seconds) / reference_cpu_per_s if reference_cpu_per_s > 0 else float("nan")
            print(f"{label:<34} {judged:7d} {judged / max(cpu, 1e-9):13.1f} {cpu:7.2f} "
                  f"{100 * cpu / seconds:6.1f}% {ratio:9.2f}")  # fmt: skip
            latency_rows.append((label, latencies))
    finally:
        origin.stdin.close()
        try:
            origin.wait(10)
        except subprocess.TimeoutExpired:
            origin.kill()
            origin.wait()
    for label, latencies in latency_rows:
        if latencies:
            print(f"{label}: capture → verdict p50 {_quantile(latencies, 0.5) * 1000:.0f} ms, "
                  f"p99 {_quantile(latencies, 0.99) * 1000:.0f} ms ({len(latencies)} frames)")  # fmt: skip
    return false_attributions
