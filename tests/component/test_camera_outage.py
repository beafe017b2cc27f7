"""``canarywatch run`` with a camera that cannot publish: the integration keeps showing
its tenant the last frame it took, which the viewer rightly judges ``stale``; while the
camera's publisher fails, those frames are counted and not warned about (the camera is
the news: it is reported down, and ``canarywatch_camera_up`` says so), as the operator
does for a camera pod that is down. A cache that serves old frames while the camera
publishes is still warned about."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from standalone_configs import snapshot_watch

from canarywatch.markers import Keyring
from canarywatch.serving import ServedApp
from canarywatch.standalone import Pipeline, StandaloneConfig

TENANTS = ("acme-7", "bravo-2")


class Ingest:
    """Keeps each camera's last upload and shows it to its tenant. ``refusing``: tenants
    whose uploads it answers 503 (their camera cannot publish); ``frozen``: tenants
    whose uploads it accepts and ignores (a cache that is not refreshed)."""

    def __init__(self) -> None:
        self.frames: dict[tuple[str, str], bytes] = {}
        self.refusing: set[str] = set()
        self.frozen: set[str] = set()

    async def upload(self, request: web.Request) -> web.Response:
        tenant, camera = request.match_info["tenant"], request.match_info["camera"]
        body = await request.read()
        if tenant in self.refusing:
            return web.Response(status=503)
        if tenant not in self.frozen or (tenant, camera) not in self.frames:
            self.frames[(tenant, camera)] = body
        return web.Response(status=204)

    async def view(self, request: web.Request) -> web.Response:
        frame = self.frames.get((request.match_info["tenant"], request.match_info["camera"]))
        if frame is None:
            return web.Response(status=404)
        return web.Response(body=frame, content_type="image/jpeg")


@asynccontextmanager
async def serving(ingest: Ingest) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_put("/v3/devices/{tenant}/{camera}/frame", ingest.upload)
    app.router.add_get("/v3/devices/{tenant}/{camera}/live.jpg", ingest.view)
    served = await ServedApp.start(app, "127.0.0.1", 0)
    try:
        yield served.base_url
    finally:
        await served.stop()


async def run(ingest: Ingest, keyring: Keyring, *, after: float, spoil: set[str]) -> tuple[Any, list[str]]:
    """Run for 6 s; ``after`` seconds in, ``spoil`` becomes ``{"bravo-2"}``."""
    events: list[str] = []
    async with serving(ingest) as base:
        pipeline = Pipeline(
            StandaloneConfig.from_mapping(snapshot_watch(base, TENANTS, fps=5)),
            keyring=keyring,
            out_dir=None,
            on_event=events.append,
        )
        running = asyncio.create_task(pipeline.run(duration=6.0))
        await asyncio.sleep(after)
        spoil.add("bravo-2")
        result = await running
    return result, events


def camera_up(result: Any, tenant: str) -> float | None:
    probe = result.summary["probe"]
    labels = {"namespace": "", "integration": "under-test", "probe": probe, "tenant": tenant}
    return result.metrics.sample("canarywatch_camera_up", labels)


async def test_stale_frames_of_a_camera_that_cannot_publish_are_not_warned_about(keyring: Keyring) -> None:
    ingest = Ingest()
    result, events = await run(ingest, keyring, after=1.5, spoil=ingest.refusing)
    summary = result.summary
    assert summary["warnings"] == 0, [e for e in events if "WARNING stale" in e]
    down = [e for e in events if e.startswith("WARNING camera bravo-2/0 is down")]
    assert down == [
        "WARNING camera bravo-2/0 is down (its publisher fails: HTTP 503): "
        "tenant bravo-2's stale frames are counted, not acted on"
    ]
    assert summary["verdicts"].get("stale", 0) > 0  # the frames are what they are
    assert summary["stale_while_camera_down"]["bravo-2"] == summary["verdicts"]["stale"]
    assert camera_up(result, "bravo-2") == 0
    assert camera_up(result, "acme-7") == 1


async def test_a_cache_serving_old_frames_of_a_camera_that_publishes_is_still_warned_about(
    keyring: Keyring,
) -> None:
    ingest = Ingest()
    result, events = await run(ingest, keyring, after=1.5, spoil=ingest.frozen)
    summary = result.summary
    assert summary["warnings"] > 0
    assert any(e.startswith("WARNING stale") for e in events)
    assert summary["stale_while_camera_down"] == {}
    assert not any("is down" in e for e in events)
    assert camera_up(result, "bravo-2") == 1
