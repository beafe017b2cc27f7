"""``canarywatch bench video``: what watching a video path costs, and whether the marker
survives H.264 at the bitrates hubs fall to.

1. CPU per watched stream (720p, 15 fps, 2 s GOP, H.264 in MPEG-TS, made here with PyAV
   from canary frames): the viewer's decode + verdict of every sampled frame, keyframes
   only (the default) and every frame, as a ratio to ``ffmpeg -f null`` decoding the same
   file in the same run, and as a share of one core for a stream of that length.
2. Marker decode rate over every frame of H.264 at 150 kbit/s, 640×360 and 320×180:
   verified as the right tenant and camera, degraded, anything else, and false
   attributions (verified as anyone else: must be 0).
3. Capture → verdict latency per path, p50 and p99: a canary camera pushes to the
   reference relay, and the viewer runner (as ``canarywatch run`` assembles it) watches
   it through every path the relay serves — snapshot, MJPEG, the HLS ladder, a Google
   hub (GetCameraStream → HLS) and an Alexa hub (InitializeCameraStreams → RTSP). The
   capture time is the one the frame's signed marker carries; the verdict time is when
   the viewer had judged it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from canarywatch.bench.video_transports import print_transport_rows
from canarywatch.bench.video_webrtc import print_whep_rows
from canarywatch.markers import Decoder, FrameSpec, Keyring, Status, render_frame
from canarywatch.viewer.judging import FrameResult
from canarywatch.viewer.transports.video import Sampling, iter_frames

__all__ = ["run_video_benchmark"]

TENANT, OTHER = "acme-7", "bravo-2"


def _encode(
    keyring: Keyring, *, width: int, height: int, fps: int, gop_s: float, kbps: int, frames: int
) -> bytes:
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = kbps * 1000
        gop = str(round(fps * gop_s))
        stream.options = {"preset": "veryfast", "g": gop, "keyint_min": gop, "sc_threshold": "0"}
        start = time.time()
        key = keyring.key(TENANT)
        for seq in range(frames):
            image = render_frame(FrameSpec(TENANT, 0, seq + 1, start + seq / fps, width, height), key)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def _ffmpeg_cpu(path: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path), "-f", "null", "-"],
        check=True,
        timeout=600,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _viewer_cpu(data: bytes, decoder: Decoder, *, keyframes_only: bool) -> tuple[float, Counter[str]]:
    sampling = Sampling(keyframes_only=keyframes_only, max_frames=1_000_000)
    outcomes: Counter[str] = Counter()
    started = time.process_time()
    for frame in iter_frames(io.BytesIO(data), sampling=sampling, limit=0):
        outcomes[_outcome(decoder, frame.image)] += 1
    return time.process_time() - started, outcomes


def _outcome(decoder: Decoder, image: bytes) -> str:
    obs = decoder.decode(image)
    if obs.status is Status.VERIFIED:
        right = obs.tenant == TENANT and obs.payload is not None and obs.payload.camera == 0
        return "verified" if right else "FALSE ATTRIBUTION"
    return obs.status.value


def run_video_benchmark(*, seconds: int = 30, marker_frames: int = 400, latency_seconds: float = 20.0) -> int:
    """Print the tables; 0, or 1 when a frame was attributed to anyone else."""
    if shutil.which("ffmpeg") is None:
        print("ffmpeg not found: hack/install-streaming-servers.sh installs it")
        return 1
    keyring = Keyring.generate([TENANT, OTHER])
    decoder = Decoder(keyring)
    fps = 15
    data = _encode(keyring, width=1280, height=720, fps=fps, gop_s=2.0, kbps=2000, frames=seconds * fps)
    false_attributions = 0
    with tempfile.TemporaryDirectory(prefix="canarywatch-bench-video-") as tmp:
        path = Path(tmp) / "stream.ts"
        path.write_bytes(data)
        reference = _ffmpeg_cpu(path)
        print(f"CPU per watched stream: 720p, {fps} fps, 2 s GOP, 2 Mbit/s, {seconds} s of video")
        print(
            f"{'decoder':<34} {'judged':>7} {'judged/s CPU':>13} {'CPU s':>7} {'% core':>7} {'x ffmpeg':>9}"
        )
        print(f"{'ffmpeg -f null (all frames)':<34} {'-':>7} {'-':>13} {reference:7.2f} "
              f"{100 * reference / seconds:6.1f}% {1.0:9.2f}")  # fmt: skip
        for label, keyframes_only in (("viewer, keyframes only", True), ("viewer, every frame", False)):
            cpu, outcomes = _viewer_cpu(data, decoder, keyframes_only=keyframes_only)
            judged = sum(outcomes.values())
            false_attributions += outcomes["FALSE ATTRIBUTION"]
            print(f"{label:<34} {judged:7d} {judged / cpu:13.1f} {cpu:7.2f} "
                  f"{100 * cpu / seconds:6.1f}% {cpu / reference:9.2f}")  # fmt: skip
        false_attributions += print_transport_rows(
            keyring,
            decoder,
            _outcome,
            tenant=TENANT,
            seconds=seconds,
            fps=fps,
            workdir=Path(tmp),
            ffmpeg_cpu=_ffmpeg_cpu,
        )
        false_attributions += print_whep_rows(
            keyring,
            decoder,
            tenant=TENANT,
            seconds=seconds,
            fps=fps,
            reference_cpu_per_s=reference / seconds,
        )
    print()
    print(f"Marker decode rate, every frame of H.264 at 150 kbit/s ({marker_frames} frames, 15 fps, 2 s GOP)")
    print(f"{'size':<10} {'verified':>9} {'degraded':>9} {'other':>7} {'false attributions':>19}")
    for width, height in ((640, 360), (320, 180)):
        clip = _encode(keyring, width=width, height=height, fps=15, gop_s=2.0, kbps=150, frames=marker_frames)
        _, outcomes = _viewer_cpu(clip, decoder, keyframes_only=False)
        total = sum(outcomes.values())
        other = total - outcomes["verified"] - outcomes["degraded"] - outcomes["FALSE ATTRIBUTION"]
        false_attributions += outcomes["FALSE ATTRIBUTION"]
        verified, degraded = outcomes["verified"] / total, outcomes["degraded"] / total
        print(f"{f'{width}x{height}':<10} {verified:9.2%} {degraded:9.2%} "
              f"{other:7d} {outcomes['FALSE ATTRIBUTION']:19d}   ({total} frames)")  # fmt: skip
    print()
    _print_latencies(asyncio.run(_path_latencies(latency_seconds)), latency_seconds)
    return 1 if false_attributions else 0


async def _path_latencies(seconds: float) -> dict[str, list[float]]:
    """Capture → verdict seconds of the camera's own frames, by path, over ``seconds``."""
    from canarywatch.camera import CameraFleet, CanaryCamera, PushTarget
    from canarywatch.metrics import Metrics
    from canarywatch.relay import RelayConfig, run_relay
    from canarywatch.viewer.http import RequestTemplate
    from canarywatch.viewer.network import GOOD
    from canarywatch.viewer.plan import ViewerSpec, Watcher, plan_streams
    from canarywatch.viewer.runner import ViewerRunner

    keyring = Keyring.generate([TENANT, OTHER])
    tokens = {t: f"bench-{t}" for t in (TENANT, OTHER)}
    config = RelayConfig(tenants=tokens, admin_token="bench-admin", hls_segment_seconds=1.0, rtsp_port=0)
    relay = await run_relay(config)
    base = relay.base_url
    device = base + "/v3/devices/{tenant}/{camera}"
    bearer = {"Authorization": "Bearer {token}"}
    paths = {
        "snapshot": RequestTemplate(device + "/live.jpg", headers=bearer),
        "mjpeg": RequestTemplate(device + "/stream.mjpg", headers=bearer),
        "hls": RequestTemplate(device + "/hls/master.m3u8", headers=bearer),
        "hub": RequestTemplate(base + "/v3/smarthome/fulfillment", method="POST", headers=bearer),
    }
    alexa = {"hub": RequestTemplate(base + "/v3/alexa/directive", method="POST", headers=bearer)}
    latencies: dict[str, list[float]] = defaultdict(list)

    async def judged(result: FrameResult) -> None:
        latency = result.verdict_latency
        if latency is not None and result.observation.tenant == TENANT:
            latencies[_path_row(result)].append(latency)

    runners = [
        ViewerRunner(
            plan_streams(
                ViewerSpec(
                    integration="bench",
                    probe="video",
                    tenants=(TENANT, OTHER),
                    watchers=(Watcher(TENANT, tokens[TENANT]),),
                    cameras=1,
                    endpoints=endpoints,
                    profiles=(GOOD,),
                    freshness_seconds=60.0,
                    poll_interval=0.25,
                    hub_protocol=protocol,
                )
            ),
            decoder=Decoder(keyring),
            metrics=Metrics(),
            handle=judged,
        )
        for endpoints, protocol in ((paths, "google"), (alexa, "alexa"))
    ]
    camera = CanaryCamera(TENANT, 0, keyring.key(TENANT), width=640, height=360)
    push = PushTarget(
        "PUT", f"{base}/v3/devices/{TENANT}/0/frame", {"Authorization": f"Bearer {tokens[TENANT]}"}
    )
    publishing = asyncio.create_task(CameraFleet([camera], fps=10).run_push({(TENANT, 0): push}))
    try:
        for runner in runners:
            runner.start()
        await asyncio.sleep(seconds)
    finally:
        for runner in runners:
            await runner.stop()
        # FFmpeg's RTSP threads see the stop at their next frame and hang up: let them,
        # rather than have the relay cut sessions that are still playing
        await asyncio.sleep(2.0)
        publishing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publishing
        await relay.stop()
    return latencies


def _path_row(result: FrameResult) -> str:
    path = result.stream.kind
    if path == "hub":
        return f"hub → {result.meta.get('stream_protocol', '?')}"
    return path


def _print_latencies(latencies: dict[str, list[float]], seconds: float) -> None:
    print(
        f"Capture → verdict latency per path (reference relay, 640x360, 10 fps, {seconds:g} s, good network)"
    )
    print(f"{'path':<14} {'frames':>7} {'p50 s':>7} {'p99 s':>7}")
    known = ["snapshot", "mjpeg", "hls", "hub → hls", "hub → rtsp"]
    for row in known + sorted(latencies.keys() - set(known)):
        seen = latencies.get(row, [])
        if len(seen) < 2:
            print(f"{row:<14} {len(seen):7d} {'-':>7} {'-':>7}   (too few frames judged)")
            continue
        cuts = statistics.quantiles(seen, n=100, method="inclusive")
        print(f"{row:<14} {len(seen):7d} {cuts[49]:7.3f} {cuts[98]:7.3f}")
