"""Canary cameras that publish streams instead of single JPEGs.

H.264 video, received by a real server nobody here wrote: FFmpeg listening as an RTSP
server (the camera ANNOUNCEs and RECORDs) and as an RTMP server. What the server
receives is decoded to pictures and judged: every picture is the camera's own verified
canary, in order, at the configured keyframe interval. And a long MJPEG POST to the
reference relay, whose every part becomes a frame its tenant is shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import subprocess
from pathlib import Path

import av
import cv2
import pytest
from availability import unavailable
from controlplane import free_port
from standalone_configs import snapshot_watch
from tls_servers import terminator_process, throwaway_pkis

from canarywatch import tasks
from canarywatch.camera import CameraFleet, CanaryCamera, PushTarget
from canarywatch.camera.video import StreamProtocol, VideoPublisher, VideoTarget, ffmpeg_tls_verification
from canarywatch.markers import Decoder, Keyring, Status
from canarywatch.relay import RelayConfig, run_relay
from canarywatch.retrying import Backoff
from canarywatch.standalone import Pipeline, StandaloneConfig

FRAMES = 8


def listening_server(protocol: StreamProtocol, url: str, out: Path) -> subprocess.Popen[bytes]:
    """FFmpeg as the ingest server: keeps what it is sent (stream copy, no re-encode)."""
    if shutil.which("ffmpeg") is None:
        unavailable("ffmpeg not installed; run hack/install-streaming-servers.sh (make test does)")
    listen = ["-rtsp_flags", "listen"] if protocol is StreamProtocol.RTSP else ["-listen", "1"]
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", *listen, "-i", url]
    argv += ["-c", "copy", "-frames:v", str(FRAMES), "-f", "mpegts", str(out)]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ingest_urls(protocol: StreamProtocol, port: int) -> tuple[str, str]:
    """The URL the ingest listens on, and the path (and stream key) a camera publishes to."""
    if protocol is StreamProtocol.RTMP:
        return f"rtmp://127.0.0.1:{port}/live/acme-7-0", "/live/acme-7-0?key=s3cret-key"
    return f"rtsp://127.0.0.1:{port}/acme-7/0", "/acme-7/0"


async def publish_until_received(
    protocol: StreamProtocol, listen_url: str, url: str, keyring: Keyring, received: Path
) -> tuple[CanaryCamera, VideoPublisher]:
    """A camera publishing to ``url`` until the ingest listening on ``listen_url`` has
    kept FRAMES frames in ``received``."""
    server = listening_server(protocol, listen_url, received)
    camera = CanaryCamera("acme-7", 0, keyring.key("acme-7"), width=320, height=180)
    target = VideoTarget(url, protocol=protocol, keyframe_interval=0.5, bitrate=300_000)
    publisher = VideoPublisher(camera, target, fps=8, backoff=Backoff(base=0.2, cap=0.5))
    task = asyncio.create_task(publisher.run())
    try:
        # the server may take a moment to listen: the publisher retries until it does
        for _ in range(300):
            if server.poll() is not None:
                break
            await asyncio.sleep(0.05)
    finally:
        publisher.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if server.poll() is None:
            server.kill()
        _, stderr = server.communicate(timeout=10)
    assert received.exists(), stderr.decode(errors="replace")[-2000:]
    return camera, publisher


def assert_canaries_received(received: Path, camera: CanaryCamera, decoder: Decoder) -> None:
    """What the ingest kept is the camera's own verified canary, in order."""
    pictures = []
    keyframes = 0
    with av.open(io.BytesIO(received.read_bytes())) as container:
        for packet in container.demux(video=0):
            keyframes += packet.is_keyframe
            for frame in packet.decode():
                pictures.append(frame.to_ndarray(format="bgr24"))
    assert len(pictures) >= FRAMES - 2 and keyframes >= 2  # 0.5 s GOP at 8 fps: one every 4
    seqs = []
    for picture in pictures:
        obs = decoder.decode(cv2.imencode(".png", picture)[1].tobytes())
        assert obs.status is Status.VERIFIED and obs.tenant == "acme-7", obs
        assert obs.payload is not None and obs.payload.camera == 0
        seqs.append(obs.payload.seq)
    assert seqs == sorted(seqs) and camera.published >= len(seqs)


@pytest.mark.parametrize("protocol", list(StreamProtocol))
async def test_a_camera_publishes_its_canary_as_h264(
    protocol: StreamProtocol, keyring: Keyring, decoder: Decoder, tmp_path: Path
) -> None:
    listen_url, _ = ingest_urls(protocol, free_port())
    received = tmp_path / "received.ts"
    camera, _ = await publish_until_received(protocol, listen_url, listen_url, keyring, received)
    assert_canaries_received(received, camera, decoder)


# -- rtmps and rtsps: nothing goes to a server that does not prove it is the URL's host -----------


@pytest.fixture
def pkis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return throwaway_pkis(tmp_path, monkeypatch)


async def test_a_camera_publishes_over_rtmps_to_an_ingest_it_verifies(
    keyring: Keyring, decoder: Decoder, tmp_path: Path, pkis: dict[str, Path]
) -> None:
    port = free_port()
    listen_url, path = ingest_urls(StreamProtocol.RTMP, port)
    received, seen = tmp_path / "received.ts", tmp_path / "seen.bin"
    with terminator_process(pkis["trusted"], port, seen) as ingest:
        url = f"rtmps://127.0.0.1:{ingest}{path}"
        camera, _ = await publish_until_received(StreamProtocol.RTMP, listen_url, url, keyring, received)
    assert_canaries_received(received, camera, decoder)
    assert b"s3cret-key" in seen.read_bytes()  # the key went to the real ingest, inside TLS


@pytest.mark.parametrize(
    ("protocol", "pki"),
    [
        (StreamProtocol.RTMP, "untrusted"),
        (StreamProtocol.RTMP, "other_host"),
        # FFmpeg's RTSP muxer cannot be made to verify: rtsps is refused, even to a good server
        (StreamProtocol.RTSP, "trusted"),
    ],
)
async def test_a_camera_sends_nothing_to_an_ingest_it_cannot_verify(
    protocol: StreamProtocol,
    pki: str,
    keyring: Keyring,
    tmp_path: Path,
    pkis: dict[str, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The impostor passes what it gets on to the real ingest (a man in the middle): with
    FFmpeg's own unverified TLS it read the requests, the path and RTMP's stream key."""
    port = free_port()
    listen_url, path = ingest_urls(protocol, port)
    userinfo = "acme-7:s3cret@" if protocol is StreamProtocol.RTSP else ""
    seen = tmp_path / "seen.bin"
    server = listening_server(protocol, listen_url, tmp_path / "received.ts")
    camera = CanaryCamera("acme-7", 0, keyring.key("acme-7"), width=320, height=180)
    try:
        with terminator_process(pkis[pki], port, seen) as impostor:
            url = f"{protocol.value}s://{userinfo}127.0.0.1:{impostor}{path}"
            target = VideoTarget(url, protocol=protocol, keyframe_interval=0.5, bitrate=300_000)
            publisher = VideoPublisher(camera, target, fps=8, backoff=Backoff(base=0.1, cap=0.2))
            task = asyncio.create_task(publisher.run())
            try:
                for _ in range(200):  # bounded: a few sessions, each refused before a byte is sent
                    if camera.failed >= 2 or seen.exists():
                        break
                    await asyncio.sleep(0.05)
            finally:
                publisher.stop()
                await tasks.reap(task)
    finally:
        server.kill()
        server.communicate(timeout=10)
    assert not seen.exists(), seen.read_bytes()[:300]
    assert camera.published == 0 and camera.failed >= 2
    expected = "UnverifiableTls" if protocol is StreamProtocol.RTSP else "SSLCertVerificationError"
    assert publisher.last_error is not None and publisher.last_error.startswith(expected), (
        publisher.last_error
    )
    warning = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    reason = {
        "untrusted": "unable to get local issuer certificate",
        "other_host": "IP address mismatch",
        "trusted": "FFmpeg's RTSP muxer cannot verify",
    }[pki]
    assert "nothing sent to 127.0.0.1 over TLS" in warning and reason in warning, warning
    assert "s3cret" not in caplog.text


def open_output(url: str, options: dict[str, str]) -> None:
    """Open ``url`` as a camera's FLV output: FFmpeg connects once the header is written."""
    container = av.open(url, mode="w", format="flv", options=options, timeout=5)
    try:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
    finally:
        container.close()


@pytest.mark.parametrize("pki", ["untrusted", "other_host"])
async def test_ffmpegs_own_rtmps_connection_verifies_the_ingest(
    pki: str, tmp_path: Path, pkis: dict[str, Path]
) -> None:
    """Python's check before each session names why; FFmpeg's own connection, made
    after it, must verify too (a server may answer the check and not the session)."""
    seen = tmp_path / "seen.bin"
    with terminator_process(pkis[pki], free_port(), seen) as impostor:
        url = f"rtmps://127.0.0.1:{impostor}/live/acme-7-0?key=s3cret-key"
        with pytest.raises(OSError):  # FFmpeg's bare EIO: its log has the reason
            await asyncio.to_thread(open_output, url, ffmpeg_tls_verification())
    assert not seen.exists(), seen.read_bytes()[:300]


async def test_a_long_mjpeg_post_feeds_the_relay_frame_by_frame(keyring: Keyring, decoder: Decoder) -> None:
    tenants = {"acme-7": "token-acme", "bravo-2": "token-bravo"}
    relay = await run_relay(RelayConfig(tenants=tenants, admin_token="admin"))
    cameras = [CanaryCamera(t, 0, keyring.key(t), width=320, height=180) for t in tenants]
    fleet = CameraFleet(cameras, fps=10)
    targets = {
        (t, 0): PushTarget(
            "POST", f"{relay.base_url}/v3/devices/{t}/0/stream", {"Authorization": f"Bearer {tok}"}
        )
        for t, tok in tenants.items()
    }
    task = asyncio.create_task(fleet.run_mjpeg_post(targets))
    try:
        counters = relay.relay.state.counters
        for _ in range(200):
            if counters.frames_ingested >= 10:
                break
            await asyncio.sleep(0.05)
        assert counters.frames_ingested >= 10 and counters.frames_rejected == 0
        for tenant in tenants:
            frame = relay.relay.frames.latest(tenant, "0")
            assert frame is not None
            obs = decoder.decode(frame.jpeg)
            assert obs.status is Status.VERIFIED and obs.tenant == tenant
        # one upload per camera, held open: no reconnection, nothing failed
        assert all(c.failed == 0 and c.published >= 5 for c in cameras)
        # the kill switch ends the uploads (503); the cameras count it and retry
        relay.relay.kill(actor="test", reason="test")
        for _ in range(200):
            if all(c.failed >= 1 for c in cameras):
                break
            await asyncio.sleep(0.05)
        assert all(c.failed >= 1 and c.last_status == 503 for c in cameras)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await relay.stop()


async def test_canarywatch_run_with_mjpeg_post_cameras(keyring: Keyring) -> None:
    """The standalone pipeline with ``camera.publish`` (mjpeg): the relay takes the long
    uploads, viewers see their own frames, published vs seen reconciles."""
    tenants = ("acme-7", "bravo-2")
    relay = await run_relay(RelayConfig(tenants={t: f"token-{t}" for t in tenants}, admin_token="admin"))
    stream = relay.base_url + "/v3/devices/{tenant}/{camera}/stream"
    publish = {"protocol": "mjpeg", "url": stream, "headers": {"Authorization": "Bearer {token}"}}
    config = StandaloneConfig.from_mapping(
        snapshot_watch(relay.base_url, tenants, camera={"publish": publish})
    )
    try:
        result = await Pipeline(config, keyring=keyring, out_dir=None).run(duration=3.0)
    finally:
        await relay.stop()
    summary = result.summary
    assert summary["verdicts"].get("ok", 0) >= 10 and summary["incidents"] == []
    assert summary["delivery"]["conditions"] == [] and summary["delivery"]["seen"] >= 4
