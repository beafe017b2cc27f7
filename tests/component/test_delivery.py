"""Published vs seen: an integration that answers 2xx to every upload and serves nothing
is reported (``FramesNotDelivered`` in the run's summary and on the terminal), and one
that serves every tenant its own frames is not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from standalone_configs import snapshot_watch

from canarywatch.markers import Keyring
from canarywatch.relay import RelayConfig, run_relay
from canarywatch.serving import ServedApp
from canarywatch.standalone import Pipeline, StandaloneConfig

TENANTS = ("acme-7", "bravo-2")


@asynccontextmanager
async def black_hole() -> AsyncIterator[str]:
    """Takes every frame (204) and shows nobody anything (404)."""

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_put("/v3/devices/{tenant}/{camera}/frame", accept)
    served = await ServedApp.start(app, "127.0.0.1", 0)
    try:
        yield served.base_url
    finally:
        await served.stop()


async def run(base: str, keyring: Keyring) -> tuple[dict[str, Any], list[str]]:
    events: list[str] = []
    pipeline = Pipeline(
        StandaloneConfig.from_mapping(snapshot_watch(base, TENANTS, fps=4)),
        keyring=keyring,
        out_dir=None,
        on_event=events.append,
    )
    result = await pipeline.run(duration=3.0)
    return result.summary, events


async def test_an_integration_that_drops_every_frame_is_reported(keyring: Keyring) -> None:
    async with black_hole() as base:
        summary, events = await run(base, keyring)
    delivery = summary["delivery"]
    assert delivery["published"] >= 8 and delivery["seen"] == 0
    assert {(c["tenant"], c["camera"]) for c in delivery["conditions"]} == {(t, 0) for t in TENANTS}
    assert all(c["type"] == "FramesNotDelivered" for c in delivery["conditions"])
    warned = [e for e in events if "FramesNotDelivered" in e]
    assert len(warned) == len(TENANTS)  # once per camera, not once per check


async def test_a_relay_that_serves_its_tenants_reports_no_condition(keyring: Keyring) -> None:
    relay = await run_relay(RelayConfig(tenants={t: f"token-{t}" for t in TENANTS}, admin_token="admin"))
    try:
        summary, events = await run(relay.base_url, keyring)
    finally:
        await relay.stop()
    delivery = summary["delivery"]
    assert delivery["conditions"] == []
    assert all(c["seen"] > 0 and c["published"] >= c["seen"] for c in delivery["cameras"])
    assert not [e for e in events if "FramesNotDelivered" in e]
