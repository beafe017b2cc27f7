"""Published vs seen: an integration that answers 2xx to every upload and serves nothing
is reported (``FramesNotDelivered`` in the run's summary and on the terminal), and one
that serves every tenant its own frames is not. In a cluster the camera pod and the
viewer pod are separate processes: each exports its half with the same labels, for the
``CanarywatchFramesNotDelivered`` alert (tests/chart/rules-tests.yaml) to join."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from standalone_configs import snapshot_watch

from canarywatch.agents.camera import CameraAgent
from canarywatch.agents.env import CameraSettings, ViewerSettings
from canarywatch.agents.viewer import IncidentReporter, ViewerAgent
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


# -- in a cluster: the camera pod and the viewer pod, each with its own /metrics ------------

DELIVERY_KEYS = ("integration", "probe", "tenant", "camera")


def agent_environ(tmp_path: Path, role: str, adapter: dict[str, Any]) -> dict[str, str]:
    """What ``controller.manifests`` gives the pods of probe ``canaries``: one camera pod
    running every tenant's cameras, one viewer pod watching as every tenant."""
    token_dir = tmp_path / "tokens"
    token_dir.mkdir(exist_ok=True)
    for tenant in TENANTS:
        (token_dir / tenant).write_text(f"token-{tenant}\n")
    return {
        "CANARYWATCH_ROLE": role,
        "CANARYWATCH_NAMESPACE": "cameras",
        "CANARYWATCH_POD_NAME": f"canaries-{role}-0",
        "CANARYWATCH_INTEGRATION": "reference-relay",
        "CANARYWATCH_PROBE": "canaries",
        "CANARYWATCH_TENANTS": ",".join(TENANTS),
        "CANARYWATCH_CAMERAS": "2",
        "CANARYWATCH_FPS": "4",
        "CANARYWATCH_KEYRING_DIR": str(tmp_path),
        "CANARYWATCH_TOKEN_DIR": str(token_dir),
        "CANARYWATCH_ADAPTER": json.dumps(adapter),
        "CANARYWATCH_METRICS_HOST": "127.0.0.1",
        "CANARYWATCH_METRICS_PORT": "0",
        "CANARYWATCH_FRAME_WIDTH": "320",
        "CANARYWATCH_FRAME_HEIGHT": "180",
        "CANARYWATCH_TRANSPORTS": "snapshot",
        "CANARYWATCH_NETWORK_PROFILES": json.dumps({"good": "good"}),
        "CANARYWATCH_NETWORK_SHAPER": "application",
        "CANARYWATCH_FRESHNESS_SECONDS": "10",
    }


def delivery_samples(text: str, name: str) -> dict[tuple[str, ...], float]:
    """``name``'s samples from a scrape, keyed by the labels the alert joins on."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                assert set(sample.labels) == set(DELIVERY_KEYS), sample.labels
                found[tuple(sample.labels[k] for k in DELIVERY_KEYS)] = sample.value
    return found


async def run_pods(tmp_path: Path, base: str, keyring: Keyring) -> tuple[str, str]:
    """The camera pod pushing to ``base`` and the viewer pod polling snapshots, for a few
    seconds; both pods' ``/metrics`` as Prometheus scrapes them."""
    device = base + "/v3/devices/{tenant}/{camera}"
    auth = {"Authorization": "Bearer {token}"}
    camera = CameraAgent(
        CameraSettings.from_environ(
            agent_environ(
                tmp_path, "camera", {"push": {"url": device + "/frame", "method": "PUT", "headers": auth}}
            )
        ),
        keyring=keyring,
    )
    viewer = ViewerAgent(
        ViewerSettings.from_environ(
            agent_environ(
                tmp_path,
                "viewer",
                {"snapshot": {"url": device + "/live.jpg", "headers": auth}, "pollInterval": 0.25},
            )
        ),
        keyring=keyring,
        reporter=IncidentReporter(lambda manifest: None),
    )
    stop = asyncio.Event()
    running = [asyncio.create_task(camera.run(stop)), asyncio.create_task(viewer.run(stop))]
    try:
        await asyncio.sleep(3.0)
        async with aiohttp.ClientSession() as http:
            scrapes = []
            for url in (camera.metrics_url, viewer.metrics_url):
                assert url is not None
                async with http.get(url) as response:
                    scrapes.append(await response.text())
    finally:
        stop.set()
        await asyncio.gather(*running)
    return scrapes[0], scrapes[1]


async def test_camera_and_viewer_pods_count_published_and_seen_on_the_same_series(
    tmp_path: Path, keyring: Keyring
) -> None:
    relay = await run_relay(RelayConfig(tenants={t: f"token-{t}" for t in TENANTS}, admin_token="admin"))
    try:
        camera_text, viewer_text = await run_pods(tmp_path, relay.base_url, keyring)
    finally:
        await relay.stop()
    published = delivery_samples(camera_text, "canarywatch_frames_published_total")
    seen = delivery_samples(viewer_text, "canarywatch_frames_seen_total")
    cameras = {("reference-relay", "canaries", t, str(c)) for t in TENANTS for c in range(2)}
    # the same label values on both sides, so CanarywatchFramesNotDelivered's join matches
    assert published.keys() == seen.keys() == cameras
    assert all(published[c] >= 4 and 0 < seen[c] <= published[c] for c in cameras), (published, seen)


async def test_a_viewer_pod_that_sees_nothing_exports_its_seen_series_at_zero(
    tmp_path: Path, keyring: Keyring
) -> None:
    async with black_hole() as base:
        camera_text, viewer_text = await run_pods(tmp_path, base, keyring)
    published = delivery_samples(camera_text, "canarywatch_frames_published_total")
    seen = delivery_samples(viewer_text, "canarywatch_frames_seen_total")
    # accepted, and a series at 0 on the viewer's side: `rate(...) == 0` can match it
    assert published.keys() == seen.keys() and len(seen) == 2 * len(TENANTS)
    assert all(v >= 4 for v in published.values()) and all(v == 0 for v in seen.values())
