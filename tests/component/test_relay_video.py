"""The reference relay's video paths over loopback: the HLS ladder (H.264 segments made
with PyAV from the canary frames), the Google smart-home fulfillment that hands hubs
its stream URLs, and ``xiaomi-2019`` leaking on the ladder's low rung only."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import av
import cv2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from canarywatch.markers import Decoder, FrameRenderer, FrameSpec, Keyring, Status, encode_image
from canarywatch.relay import Fault, RelayConfig, build_app

Client = TestClient[web.Request, web.Application]
SEGMENT = 2.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer token-{tenant}"}


@asynccontextmanager
async def relay(tenants: tuple[str, ...], clock: Clock, **settings: Any) -> AsyncIterator[Client]:
    config = RelayConfig(
        tenants={t: f"token-{t}" for t in tenants},
        admin_token="admin-secret",
        hls_segment_seconds=SEGMENT,
        **settings,
    )
    async with TestClient(TestServer(build_app(config, clock=clock))) as client:
        yield client


async def publish(
    client: Client, keyring: Keyring, clock: Clock, tenants: tuple[str, ...], seconds: float
) -> None:
    """Each tenant's camera 0 sends a canary frame every 0.5 s for ``seconds``."""
    renderers = {t: FrameRenderer(t, 0, 320, 180) for t in tenants}
    seq = 0
    while seq * 0.5 < seconds:
        seq += 1
        for tenant in tenants:
            spec = FrameSpec(tenant, 0, seq, clock.now, 320, 180)
            body = encode_image(renderers[tenant].render(spec, keyring.key(tenant)), quality=85)
            response = await client.put(
                f"/v3/devices/{tenant}/0/frame",
                data=body,
                headers={**auth(tenant), "Content-Type": "image/jpeg"},
            )
            assert response.status == 204
        clock.now += 0.5


def judge_segment(decoder: Decoder, segment: bytes) -> list[tuple[str, str | None]]:
    """(status, tenant) of every picture of an MPEG-TS segment."""
    seen = []
    with av.open(io.BytesIO(segment)) as container:
        for frame in container.decode(video=0):
            png = cv2.imencode(".png", frame.to_ndarray(format="bgr24"))[1].tobytes()
            obs = decoder.decode(png)
            seen.append((obs.status.value, obs.tenant))
    return seen


async def text(client: Client, path: str, headers: dict[str, str] | None = None) -> str:
    response = await client.get(path, headers=headers or {})
    assert response.status == 200, await response.text()
    return await response.text()


def uris(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


async def test_the_ladder_serves_each_tenant_its_own_camera_on_every_rung(
    keyring: Keyring, decoder: Decoder
) -> None:
    clock, tenants = Clock(), ("acme-7", "bravo-2")
    async with relay(tenants, clock) as client:
        await publish(client, keyring, clock, tenants, 8.0)
        for tenant in tenants:
            base = f"/v3/devices/{tenant}/0/hls/"
            master = await text(client, base + "master.m3u8", auth(tenant))
            assert "BANDWIDTH=1500000" in master and "BANDWIDTH=200000" in master
            for variant in uris(master):
                media = await text(client, base + variant, auth(tenant))
                assert "#EXT-X-MEDIA-SEQUENCE:" in media
                segments = uris(media)
                assert len(segments) == 3
                rung = variant.split("/")[0]
                response = await client.get(f"{base}{rung}/{segments[-1]}", headers=auth(tenant))
                assert response.status == 200 and response.content_type == "video/mp2t"
                seen = judge_segment(decoder, await response.read())
                assert seen and all(s == (Status.VERIFIED.value, tenant) for s in seen), (rung, seen)
        # another tenant's ladder is refused, like every device path
        response = await client.get("/v3/devices/acme-7/0/hls/master.m3u8", headers=auth("bravo-2"))
        assert response.status == 403


async def test_a_segment_outside_the_playlist_is_404(keyring: Keyring) -> None:
    clock = Clock()
    async with relay(("acme-7",), clock) as client:
        await publish(client, keyring, clock, ("acme-7",), 8.0)
        media = await text(client, "/v3/devices/acme-7/0/hls/low/index.m3u8", auth("acme-7"))
        newest = int(uris(media)[-1].removesuffix(".ts"))
        for window in (newest + 1, newest - 3):
            response = await client.get(f"/v3/devices/acme-7/0/hls/low/{window}.ts", headers=auth("acme-7"))
            assert response.status == 404


async def sync_and_stream(client: Client, tenant: str) -> str:
    """SYNC, then GetCameraStream for the first camera: its cameraStreamAccessUrl."""
    response = await client.post(
        "/v3/smarthome/fulfillment",
        json={"requestId": "r1", "inputs": [{"intent": "action.devices.SYNC"}]},
        headers=auth(tenant),
    )
    assert response.status == 200
    sync = await response.json()
    assert sync["requestId"] == "r1" and sync["payload"]["agentUserId"] == tenant
    (device,) = sync["payload"]["devices"]
    assert device["traits"] == ["action.devices.traits.CameraStream"]
    assert device["attributes"]["cameraStreamSupportedProtocols"] == ["hls"]
    execute = {
        "requestId": "r2",
        "inputs": [
            {
                "intent": "action.devices.EXECUTE",
                "payload": {
                    "commands": [
                        {
                            "devices": [{"id": device["id"]}],
                            "execution": [
                                {
                                    "command": "action.devices.commands.GetCameraStream",
                                    "params": {
                                        "StreamToChromecast": True,
                                        "SupportedStreamProtocols": ["hls", "dash"],
                                    },
                                }
                            ],
                        }
                    ]
                },
            }
        ],
    }
    response = await client.post("/v3/smarthome/fulfillment", json=execute, headers=auth(tenant))
    (command,) = (await response.json())["payload"]["commands"]
    assert command["status"] == "SUCCESS" and command["ids"] == [device["id"]]
    assert command["states"]["cameraStreamProtocol"] == "hls"
    url: str = command["states"]["cameraStreamAccessUrl"]
    return url


async def test_get_camera_stream_hands_out_a_working_stream_url(keyring: Keyring, decoder: Decoder) -> None:
    clock, tenants = Clock(), ("acme-7", "bravo-2")
    async with relay(tenants, clock) as client:
        await publish(client, keyring, clock, tenants, 8.0)
        url = await sync_and_stream(client, "bravo-2")
        path = url.split(str(client.make_url("")).rstrip("/"), 1)[1]
        assert path.startswith("/v3/streams/") and path.endswith("/master.m3u8")
        base = path.removesuffix("master.m3u8")
        master = await text(client, path)  # the URL is the credential: no header
        low = next(u for u in uris(master) if u.startswith("low/"))
        segment = uris(await text(client, base + low))[-1]
        response = await client.get(base + "low/" + segment)
        assert judge_segment(decoder, await response.read())[0] == (Status.VERIFIED.value, "bravo-2")
        # not a fulfillment request: 400; no token: 401
        response = await client.post(
            "/v3/smarthome/fulfillment", json={"requestId": "x"}, headers=auth("bravo-2")
        )
        assert response.status == 400
        response = await client.post(
            "/v3/smarthome/fulfillment",
            json={"requestId": "r", "inputs": [{"intent": "action.devices.SYNC"}]},
        )
        assert response.status == 401
        # the kill switch cuts the hub path too: the issued URL answers 503
        response = await client.post("/v3/admin/kill", headers={"Authorization": "Bearer admin-secret"})
        assert response.status == 200
        assert (await client.get(path)).status == 503


async def test_expired_or_guessed_stream_urls_are_404(keyring: Keyring) -> None:
    clock = Clock()
    async with relay(("acme-7",), clock, stream_url_seconds=30.0) as client:
        await publish(client, keyring, clock, ("acme-7",), 6.0)
        url = await sync_and_stream(client, "acme-7")
        path = url[url.index("/v3/streams/") :]
        assert (await client.get(path)).status == 200
        assert (await client.get("/v3/streams/" + "A" * 32 + "/master.m3u8")).status == 404
        clock.now += 31.0
        assert (await client.get(path)).status == 404


@pytest.mark.parametrize("fault", [Fault.XIAOMI_2019, Fault.NONE])
async def test_xiaomi_leaks_on_the_low_rung_only(fault: Fault, keyring: Keyring, decoder: Decoder) -> None:
    clock, tenants = Clock(), ("acme-7", "bravo-2")
    async with relay(tenants, clock, fault=fault) as client:
        await publish(client, keyring, clock, tenants, 8.0)
        seen: dict[str, set[str | None]] = {"low": set(), "high": set()}
        for rung in ("low", "high"):
            # acme-7's hub asks first, then bravo-2's asks for the same window
            for tenant in tenants:
                base = f"/v3/devices/{tenant}/0/hls/{rung}/"
                segment = uris(await text(client, base + "index.m3u8", auth(tenant)))[-1]
                response = await client.get(base + segment, headers=auth(tenant))
                for _, shown in judge_segment(decoder, await response.read()):
                    if shown != tenant:
                        seen[rung].add(shown)
        assert seen["high"] == set()
        assert seen["low"] == ({"acme-7"} if fault is Fault.XIAOMI_2019 else set())
