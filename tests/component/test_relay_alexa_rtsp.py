"""The reference relay's Alexa path over loopback: ``Discover`` lists the token's
tenant's cameras with ``Alexa.CameraStreamController``; ``InitializeCameraStreams``
hands out an RTSP URI on the relay's own RTSP server, which a real client nobody here
wrote (FFmpeg, RTP interleaved over TCP) plays as the camera's H.264; the low
resolution comes from the low rung and leaks under ``xiaomi-2019``."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from availability import unavailable
from relay_canaries import relay_with_canaries

from canarywatch.markers import Decoder, Keyring
from canarywatch.relay import Fault, RelayHandle

TENANTS = ("acme-7", "bravo-2")
PNG = b"\x89PNG"


def directive(
    namespace: str, name: str, token: str, *, endpoint: str | None = None, width: int = 320
) -> dict[str, Any]:
    scope = {"type": "BearerToken", "token": token}
    header = {
        "namespace": namespace,
        "name": name,
        "payloadVersion": "3",
        "messageId": "m1",
        "correlationToken": "c1",
    }
    if endpoint is None:
        return {"directive": {"header": header, "payload": {"scope": scope}}}
    stream = {"protocol": "RTSP", "resolution": {"width": width, "height": width * 9 // 16}}
    stream |= {"authorizationType": "NONE", "videoCodec": "H264", "audioCodec": "NONE"}
    return {
        "directive": {
            "header": header,
            "endpoint": {"scope": scope, "endpointId": endpoint},
            "payload": {"cameraStreams": [stream]},
        }
    }


@contextlib.asynccontextmanager
async def relay_with_cameras(keyring: Keyring, fault: Fault = Fault.NONE) -> AsyncIterator[RelayHandle]:
    if shutil.which("ffmpeg") is None:
        unavailable("ffmpeg not installed; run hack/install-streaming-servers.sh (make test does)")
    async with relay_with_canaries(
        keyring, TENANTS, interval=0.2, warm_up=2.5, fault=fault, rtsp_port=0, hls_segment_seconds=1.0
    ) as handle:
        yield handle


async def alexa(handle: RelayHandle, body: dict[str, Any]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{handle.base_url}/v3/alexa/directive", json=body) as resp,
    ):
        return resp.status, await resp.json()


async def stream_uri(handle: RelayHandle, tenant: str, width: int = 320) -> str:
    status, answer = await alexa(
        handle,
        directive(
            "Alexa.CameraStreamController",
            "InitializeCameraStreams",
            f"token-{tenant}",
            endpoint="0",
            width=width,
        ),
    )
    assert status == 200, answer
    event = answer["event"]
    assert event["header"]["name"] == "Response" and event["header"]["correlationToken"] == "c1"
    (stream,) = event["payload"]["cameraStreams"]
    assert stream["protocol"] == "RTSP" and stream["videoCodec"] == "H264"
    uri: str = stream["uri"]
    assert uri.startswith("rtsp://127.0.0.1:")
    return uri


async def play(uri: str, decoder: Decoder, frames: int = 4) -> list[str | None]:
    """The tenants of the pictures FFmpeg plays from ``uri``."""
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", uri,
        "-frames:v", str(frames), "-f", "image2pipe", "-vcodec", "png", "-",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 0, err.decode(errors="replace")
    return [decoder.decode(PNG + png).tenant for png in out.split(PNG)[1:]]


async def test_discover_and_initialize_camera_streams_play_the_tenants_camera(
    keyring: Keyring, decoder: Decoder
) -> None:
    async with relay_with_cameras(keyring) as handle:
        status, answer = await alexa(handle, directive("Alexa.Discovery", "Discover", "token-bravo-2"))
        assert status == 200
        (endpoint,) = answer["event"]["payload"]["endpoints"]
        assert endpoint["endpointId"] == "0" and endpoint["displayCategories"] == ["CAMERA"]
        interfaces = {c["interface"] for c in endpoint["capabilities"]}
        assert "Alexa.CameraStreamController" in interfaces
        for width in (1280, 320):
            uri = await stream_uri(handle, "bravo-2", width)
            shown = await play(uri, decoder)
            assert shown and set(shown) == {"bravo-2"}, shown
        # another tenant's token, an unknown camera, no token: refused
        status, answer = await alexa(
            handle,
            directive(
                "Alexa.CameraStreamController", "InitializeCameraStreams", "token-acme-7", endpoint="9"
            ),
        )
        assert answer["event"]["payload"]["type"] == "NO_SUCH_ENDPOINT"
        status, _ = await alexa(handle, directive("Alexa.Discovery", "Discover", "guess"))
        assert status == 401
        # the kill switch: new sessions are refused
        uri = await stream_uri(handle, "bravo-2")
        handle.relay.kill(actor="test", reason="test")
        process = await asyncio.create_subprocess_exec(
            "ffmpeg", "-hide_banner", "-rtsp_transport", "tcp", "-i", uri, "-f", "null", "-",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode != 0 and b"503" in err


@pytest.mark.parametrize("fault", [Fault.XIAOMI_2019, Fault.NONE])
async def test_xiaomi_leaks_into_the_low_resolution_rtsp_stream(
    fault: Fault, keyring: Keyring, decoder: Decoder
) -> None:
    async with relay_with_cameras(keyring, fault) as handle:
        first = await stream_uri(handle, "acme-7")
        second = await stream_uri(handle, "bravo-2")
        shown_first, shown_second = await asyncio.gather(play(first, decoder, 8), play(second, decoder, 8))
        foreign = [t for t in shown_first if t != "acme-7"] + [t for t in shown_second if t != "bravo-2"]
        # both displays ask for the low resolution: under the fault one cache slot serves both
        assert bool(foreign) is (fault is Fault.XIAOMI_2019), (shown_first, shown_second)
        assert set(foreign) <= set(TENANTS)
