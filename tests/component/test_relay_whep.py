"""The reference relay's WHEP endpoint (``relay/whep.py``) watched by the real
``WhepReader`` over 127.0.0.1: a tenant's own camera arrives as its verified canary over
WebRTC, another tenant's token is refused, and the kill switch ends an open session
(the next offer is answered 503)."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing, suppress

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from canarywatch.httpclient import client_session
from canarywatch.markers import Decoder, FrameRenderer, FrameSpec, Keyring, Status, encode_image
from canarywatch.relay import RelayConfig, build_app
from canarywatch.viewer.http import RenderedRequest
from canarywatch.viewer.transports import WhepReader

ACME, BRAVO = "acme-7", "bravo-2"
Client = TestClient[web.Request, web.Application]


async def _camera(client: Client, keyring: Keyring) -> None:
    """ACME's camera 0 pushes a canary frame every 0.1 s, live."""
    renderer = FrameRenderer(ACME, 0, 320, 180)
    seq = 0
    while True:
        seq += 1
        body = encode_image(
            renderer.render(FrameSpec(ACME, 0, seq, time.time(), 320, 180), keyring.key(ACME))
        )
        await client.put(
            f"/v3/devices/{ACME}/0/frame",
            data=body,
            headers={"Authorization": f"Bearer token-{ACME}", "Content-Type": "image/jpeg"},
        )
        await asyncio.sleep(0.1)


def _whep(client: Client, tenant: str) -> RenderedRequest:
    url = str(client.make_url(f"/v3/devices/{ACME}/0/whep"))
    return RenderedRequest("POST", url, {"Authorization": f"Bearer token-{tenant}"}, source="/whep")


async def test_the_relay_serves_each_camera_over_whep_to_its_owner_until_switched_off(
    keyring: Keyring, decoder: Decoder
) -> None:
    config = RelayConfig(tenants={t: f"token-{t}" for t in (ACME, BRAVO)}, admin_token="admin-secret")
    async with TestClient(TestServer(build_app(config), host="127.0.0.1")) as client:
        camera = asyncio.create_task(_camera(client, keyring))
        try:
            async with client_session() as session:
                refused = await WhepReader(session, _whep(client, BRAVO), timeout_s=5).first_frames()
                reader = WhepReader(session, _whep(client, ACME), timeout_s=5)
                statuses: list[int] = []
                verified = 0
                async with asyncio.timeout(60), aclosing(reader.frames()) as frames:
                    async for frame in frames:
                        statuses.append(frame.status)
                        if frame.body:
                            observed = decoder.decode(frame.body)
                            assert observed.status is Status.VERIFIED and observed.tenant == ACME, observed
                            verified += 1
                            if verified == 3:
                                kill = await client.post(
                                    "/v3/admin/kill",
                                    json={},
                                    headers={"Authorization": "Bearer admin-secret"},
                                )
                                assert kill.status == 200
                        if frame.status == 503:
                            break
        finally:
            camera.cancel()
            with suppress(asyncio.CancelledError):
                await camera
    assert [f.status for f in refused] == [403], refused
    assert verified >= 3 and statuses[-1] == 503, statuses
    assert reader.errors >= 1  # the open session was ended by the switch, then refused
