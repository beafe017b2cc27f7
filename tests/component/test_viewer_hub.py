"""The hub viewer against the reference relay: a smart display's SYNC, GetCameraStream
and the HLS stream it is handed; an unknown device is a hub error (not silence); an
expired stream URL is asked for again; the kill switch reaches it as a 503."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from typing import Any

import aiohttp
import pytest
from availability import unavailable
from relay_canaries import relay_with_canaries

from canarywatch.httpclient import client_session
from canarywatch.markers import Decoder, Keyring
from canarywatch.relay import Fault, RelayHandle
from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.network import GOOD, POOR, Shaper
from canarywatch.viewer.transports import FrameKind
from canarywatch.viewer.transports.hub import HUB_ERROR, HubViewer

TENANTS = ("acme-7", "bravo-2")


def relay(keyring: Keyring, **settings: Any) -> contextlib.AbstractAsyncContextManager[RelayHandle]:
    return relay_with_canaries(keyring, TENANTS, hls_segment_seconds=1.0, **settings)


def hub(session: aiohttp.ClientSession, handle: RelayHandle, tenant: str, device: str) -> HubViewer:
    request = RenderedRequest(
        "POST",
        f"{handle.base_url}/v3/smarthome/fulfillment",
        {"Authorization": f"Bearer token-{tenant}"},
        source="/v3/smarthome/fulfillment",
    )
    return HubViewer(session, request, device=device, retry_s=0.2)


async def take(viewer: HubViewer, count: int) -> list[Any]:
    frames = []
    async with contextlib.aclosing(viewer.frames()) as stream:  # type: ignore[type-var]
        async for frame in stream:
            frames.append(frame)
            if len(frames) >= count:
                break
    return frames


async def test_a_hub_watches_its_own_camera_through_the_stream_it_is_handed(
    keyring: Keyring, decoder: Decoder
) -> None:
    async with relay(keyring) as handle, client_session() as session:
        viewer = hub(session, handle, "bravo-2", "0")
        frames = await asyncio.wait_for(take(viewer, 3), 30)
        assert all(f.kind is FrameKind.HUB and f.status == 200 for f in frames)
        assert {decoder.decode(f.body).tenant for f in frames} == {"bravo-2"}
        # evidence names the fulfillment and the device, never the capability URL
        assert {f.source for f in frames} == {"/v3/smarthome/fulfillment#device=0"}
        assert frames[0].meta["stream_protocol"] == "hls" and viewer.offers == 1


async def test_an_unknown_device_is_a_hub_error(keyring: Keyring) -> None:
    async with relay(keyring) as handle, client_session() as session:
        (frame,) = await asyncio.wait_for(take(hub(session, handle, "acme-7", "front-door"), 1), 30)
        assert frame.meta["outcome"] == HUB_ERROR and "front-door" in frame.meta["hub_error"]
        assert not frame.body


async def test_an_expired_stream_is_asked_for_again_and_the_kill_switch_is_a_503(keyring: Keyring) -> None:
    async with relay(keyring, stream_url_seconds=2.0) as handle, client_session() as session:
        viewer = hub(session, handle, "acme-7", "0")
        frames = await asyncio.wait_for(take(viewer, 6), 40)
        assert viewer.offers >= 2  # the first URL expired: GetCameraStream again
        assert any(f.status == 404 for f in frames)
        handle.relay.kill(actor="test", reason="test")
        after = await asyncio.wait_for(take(viewer, 2), 30)
        assert all(f.status == 503 and f.meta.get("error") == "integration_disabled" for f in after)


def alexa_hub(session: aiohttp.ClientSession, handle: RelayHandle, tenant: str, *, slow: bool) -> HubViewer:
    request = RenderedRequest(
        "POST",
        f"{handle.base_url}/v3/alexa/directive",
        {"Authorization": f"Bearer token-{tenant}"},
        source="/v3/alexa",
    )
    profile = POOR if slow else GOOD
    return HubViewer(session, request, device="0", protocol="alexa", retry_s=0.2, shaper=Shaper(profile))


@pytest.mark.parametrize("fault", [Fault.NONE, Fault.XIAOMI_2019])
async def test_an_alexa_display_watches_the_rtsp_stream_it_is_handed(
    fault: Fault, keyring: Keyring, decoder: Decoder
) -> None:
    if shutil.which("ffmpeg") is None:
        unavailable("ffmpeg not installed; run hack/install-streaming-servers.sh (make test does)")
    async with relay(keyring, fault=fault, rtsp_port=0) as handle, client_session() as session:
        # two displays on poor links ask for the low resolution at once
        first, second = (
            alexa_hub(session, handle, "acme-7", slow=True),
            alexa_hub(session, handle, "bravo-2", slow=True),
        )
        shown = await asyncio.wait_for(asyncio.gather(take(first, 4), take(second, 4)), 60)
        assert first.protocol == "rtsp" and all(f.kind is FrameKind.HUB for f in shown[0])
        seen = [
            (viewer, decoder.decode(f.body).tenant)
            for viewer, frames in zip(TENANTS, shown, strict=True)
            for f in frames
        ]
        leaked = [(viewer, tenant) for viewer, tenant in seen if tenant != viewer]
        assert bool(leaked) is (fault is Fault.XIAOMI_2019), seen
