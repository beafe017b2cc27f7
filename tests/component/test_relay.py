"""The reference relay over loopback: auth, each fault's leak and its condition, the
correct relay under concurrent load, kill switch and outage recovery.

Frames are tiny solid-colour JPEGs: one colour per (tenant, camera), so any frame a
viewer receives, even transcoded, can be traced back to the camera it came from.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from canarywatch.relay import Fault, PullSource, RelayConfig, build_app, run_relay

ADMIN = {"Authorization": "Bearer admin-secret"}
SLOW = {"ECT": "2g"}

# Channel levels far enough apart that JPEG at low quality cannot move one colour
# onto another; 27 colours, more than any scenario here needs.
_LEVELS = (0, 128, 255)
PALETTE = list(itertools.product(_LEVELS, repeat=3))


def token(tenant: str) -> str:
    return f"token-{tenant}"


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(tenant)}"}


def make_config(tenants: list[str], **overrides: Any) -> RelayConfig:
    settings: dict[str, Any] = {"snapshot_ttl_seconds": 0.0, "event_every_frames": 1}
    settings.update(overrides)
    return RelayConfig(tenants={t: token(t) for t in tenants}, admin_token="admin-secret", **settings)


def color_jpeg(color_index: int, *, seq: int = 0, size: tuple[int, int] = (64, 36)) -> bytes:
    """A solid-colour frame; ``seq`` tweaks one pixel so every frame's bytes differ."""
    image = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    image[:] = PALETTE[color_index]
    image[0, 0] = (seq * 37) % 256
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buffer.tobytes()


def color_of(jpeg: bytes) -> int:
    """Palette index of the colour a (possibly transcoded) frame shows."""
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "relay served bytes that are not a JPEG"
    mean = image.reshape(-1, 3).mean(axis=0)
    distances = [float(np.abs(mean - np.array(c)).sum()) for c in PALETTE]
    return int(np.argmin(distances))


class FakeClock:
    """Unix-time clock that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@asynccontextmanager
async def relay_client(
    config: RelayConfig, clock: FakeClock | None = None
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(build_app(config, clock=clock))) as client:
        yield client


async def push(
    client: TestClient[web.Request, web.Application], tenant: str, camera: str, body: bytes
) -> None:
    response = await client.put(
        f"/v3/devices/{tenant}/{camera}/frame",
        data=body,
        headers={**auth(tenant), "Content-Type": "image/jpeg"},
    )
    assert response.status == 204, await response.text()


async def snapshot(
    client: TestClient[web.Request, web.Application],
    viewer: str,
    tenant: str,
    camera: str,
    headers: dict[str, str] | None = None,
) -> bytes:
    response = await client.get(
        f"/v3/devices/{tenant}/{camera}/live.jpg", headers={**auth(viewer), **(headers or {})}
    )
    assert response.status == 200, await response.text()
    return await response.read()


async def admin(
    client: TestClient[web.Request, web.Application], method: str, path: str, **json: Any
) -> dict[str, Any]:
    response = await client.request(method, f"/v3/admin/{path}", headers=ADMIN, json=json if json else None)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def feed(client: TestClient[web.Request, web.Application], viewer: str) -> list[dict[str, Any]]:
    response = await client.get("/v3/events", headers=auth(viewer))
    assert response.status == 200, await response.text()
    events: list[dict[str, Any]] = await response.json()
    return events


# -- ingest and plain viewing ---------------------------------------------------


async def test_pushed_frame_is_served_byte_for_byte_to_its_tenant() -> None:
    async with relay_client(make_config(["alice"])) as client:
        frame = color_jpeg(1)
        await push(client, "alice", "door", frame)
        response = await client.get("/v3/devices/alice/door/live.jpg", headers=auth("alice"))
        assert response.status == 200
        assert await response.read() == frame
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Frame-Seq"] == "1"
        assert response.headers["X-Relay-Variant"] == "original"
        assert "ECT" in response.headers["Vary"]


async def test_snapshot_before_any_frame_is_404() -> None:
    async with relay_client(make_config(["alice"])) as client:
        response = await client.get("/v3/devices/alice/door/live.jpg", headers=auth("alice"))
        assert response.status == 404
        assert (await response.json())["error"] == "no_frame"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"GIF89a not a jpeg", "image/jpeg", 415),
        (b"", "image/jpeg", 415),
        (color_jpeg(1), "text/plain", 415),
        (b"\xff\xd8\xff" + bytes(5000), "image/jpeg", 413),
    ],
    ids=["not-jpeg", "empty", "wrong-content-type", "oversized"],
)
async def test_camera_upload_rejections(body: bytes, content_type: str, status: int) -> None:
    async with relay_client(make_config(["alice"], max_frame_bytes=4096)) as client:
        response = await client.post(
            "/v3/devices/alice/door/frame",
            data=body,
            headers={**auth("alice"), "Content-Type": content_type},
        )
        assert response.status == status
        state = await admin(client, "GET", "state")
        assert state["counters"]["frames_rejected"] == 1
        assert state["counters"]["frames_ingested"] == 0


async def test_oversized_chunked_upload_is_413() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"\xff\xd8\xff"
        for _ in range(8):
            yield bytes(1024)

    async with relay_client(make_config(["alice"], max_frame_bytes=4096)) as client:
        response = await client.put(
            "/v3/devices/alice/door/frame",
            data=chunks(),
            headers={**auth("alice"), "Content-Type": "image/jpeg"},
        )
        assert response.status == 413


# -- authentication and authorisation --------------------------------------------

CREDENTIALS = {
    "none": {},
    "malformed": {"Authorization": "Basic dXNlcjpwYXNz"},
    "unknown": {"Authorization": "Bearer not-a-token"},
    "other-tenant": auth("bob"),
    "admin": ADMIN,
    "own": auth("alice"),
}

# endpoint -> status per credential, in CREDENTIALS order; "own" is alice, whose
# camera and event are addressed.
AUTH_MATRIX = {
    #              none malformed unknown other-tenant admin own
    "push":        (401, 401,      401,    403,         403,  204),
    "snapshot":    (401, 401,      401,    403,         403,  200),
    "stream":      (401, 401,      401,    403,         403,  200),
    # The feed is per token: bob gets his own (empty) feed, not alice's.
    "events":      (401, 401,      401,    200,         403,  200),
    # Another tenant's event does not exist for bob: 404, not 403.
    "thumbnail":   (401, 401,      401,    404,         403,  200),
    "admin-state": (401, 401,      401,    403,         200,  403),
}  # fmt: skip


@pytest.mark.parametrize(
    ("endpoint", "credential"),
    [(endpoint, credential) for endpoint in AUTH_MATRIX for credential in CREDENTIALS],
)
async def test_auth_matrix(endpoint: str, credential: str) -> None:
    async with relay_client(make_config(["alice", "bob"])) as client:
        await push(client, "alice", "door", color_jpeg(1))
        [event] = await feed(client, "alice")
        requests = {
            "push": ("PUT", "/v3/devices/alice/door/frame"),
            "snapshot": ("GET", "/v3/devices/alice/door/live.jpg"),
            "stream": ("GET", "/v3/devices/alice/door/stream.mjpg"),
            "events": ("GET", "/v3/events"),
            "thumbnail": ("GET", event["thumbnail"]),
            "admin-state": ("GET", "/v3/admin/state"),
        }
        method, path = requests[endpoint]
        headers = {**CREDENTIALS[credential], "Content-Type": "image/jpeg"}
        async with client.request(
            method, path, headers=headers, data=color_jpeg(1) if method == "PUT" else None
        ) as response:
            expected_status = dict(zip(CREDENTIALS, AUTH_MATRIX[endpoint], strict=True))
            assert response.status == expected_status[credential]
            if response.status == 401:
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
            if endpoint == "events" and response.status == 200:
                expected = 1 if credential == "own" else 0
                assert len(await response.json()) == expected


# -- the low-bandwidth variant ------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"ECT": "slow-2g"}, ""),
        ({"ECT": "3g"}, ""),
        ({"Downlink": "0.4"}, ""),
        ({"RTT": "900"}, ""),
        ({}, "?quality=low"),
    ],
)
async def test_slow_viewers_get_a_small_low_quality_variant(headers: dict[str, str], query: str) -> None:
    async with relay_client(make_config(["alice"])) as client:
        original = color_jpeg(5, size=(1280, 720))
        await push(client, "alice", "door", original)
        response = await client.get(
            f"/v3/devices/alice/door/live.jpg{query}", headers={**auth("alice"), **headers}
        )
        assert response.status == 200
        assert response.headers["X-Relay-Variant"] == "low"
        body = await response.read()
        image = cv2.imdecode(np.frombuffer(body, dtype=np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[:2] == (180, 320)
        assert len(body) < len(original)
        assert color_of(body) == 5


async def test_fast_viewers_get_the_original_and_unknown_quality_is_400() -> None:
    async with relay_client(make_config(["alice"])) as client:
        frame = color_jpeg(5)
        await push(client, "alice", "door", frame)
        fast = {"ECT": "4g", "Downlink": "10", "RTT": "50"}
        assert await snapshot(client, "alice", "alice", "door", fast) == frame
        response = await client.get("/v3/devices/alice/door/live.jpg?quality=ultra", headers=auth("alice"))
        assert response.status == 400


async def test_low_variant_is_transcoded_once_per_source_frame() -> None:
    async with relay_client(make_config(["alice"])) as client:
        await push(client, "alice", "door", color_jpeg(5, seq=1))
        for _ in range(3):
            await snapshot(client, "alice", "alice", "door", SLOW)
        await push(client, "alice", "door", color_jpeg(5, seq=2))
        for _ in range(3):
            await snapshot(client, "alice", "alice", "door", SLOW)
        state = await admin(client, "GET", "state")
        assert state["counters"]["transcodes"] == 2
        assert state["counters"]["low_variants_served"] == 6


# -- faults: each leaks through its mechanism, only under its condition ----------------


@pytest.mark.parametrize("fault", [Fault.NONE, Fault.XIAOMI_2019])
async def test_xiaomi_leaks_to_slow_viewers_only(fault: Fault) -> None:
    alice_color, bob_color = 1, 2
    async with relay_client(make_config(["alice", "bob"], fault=fault)) as client:
        alice_frame = color_jpeg(alice_color)
        await push(client, "alice", "front-door", alice_frame)
        await push(client, "bob", "front-door", color_jpeg(bob_color))
        # bob's slow hub transcodes bob's newer frame into the variant cache ...
        bob_sees = await snapshot(client, "bob", "bob", "front-door", SLOW)
        assert color_of(bob_sees) == bob_color
        # ... and alice's slow hub is served from that cache.
        alice_slow = await snapshot(client, "alice", "alice", "front-door", SLOW)
        expected = bob_color if fault is Fault.XIAOMI_2019 else alice_color
        assert color_of(alice_slow) == expected
        # A normal-speed viewer never goes through that cache.
        assert await snapshot(client, "alice", "alice", "front-door") == alice_frame


async def test_xiaomi_leaks_into_slow_mjpeg_streams_too() -> None:
    async with relay_client(make_config(["alice", "bob"], fault=Fault.XIAOMI_2019)) as client:
        await push(client, "alice", "front-door", color_jpeg(1))
        await push(client, "bob", "front-door", color_jpeg(2))
        await snapshot(client, "bob", "bob", "front-door", SLOW)
        async with client.get(
            "/v3/devices/alice/front-door/stream.mjpg", headers={**auth("alice"), **SLOW}
        ) as response:
            [(_, part)] = await read_parts(response, 1)
        assert color_of(part) == 2


@pytest.mark.parametrize("fault", [Fault.NONE, Fault.WYZE_2024])
async def test_wyze_scrambles_thumbnail_owners_during_recovery_then_heals(fault: Fault) -> None:
    clock = FakeClock()
    tenants = ["alice", "bob", "carol"]
    colors = {"alice": 1, "bob": 2, "carol": 3}
    config = make_config(tenants, fault=fault, wyze_window_seconds=60.0)
    async with relay_client(config, clock) as client:
        for tenant in tenants:
            await push(client, tenant, "door", color_jpeg(colors[tenant]))

        async def leaked_thumbnails() -> int:
            """Thumbnails served to a tenant that show another tenant's camera."""
            leaks = 0
            for tenant in tenants:
                for event in await feed(client, tenant):
                    response = await client.get(event["thumbnail"], headers=auth(tenant))
                    assert response.status == 200
                    leaks += color_of(await response.read()) != colors[tenant]
            return leaks

        assert await leaked_thumbnails() == 0
        outage = await admin(client, "POST", "outage", seconds=10)
        assert outage["phase"] == "outage"
        clock.advance(11)  # back up: caches rebuilt, recovery window open
        assert (await admin(client, "GET", "state"))["phase"] == "recovering"
        for tenant in tenants:  # events raised during recovery leak as well
            await push(client, tenant, "door", color_jpeg(colors[tenant], seq=2))
        leaks_in_window = await leaked_thumbnails()
        clock.advance(60)  # window over: the map is rebuilt correctly
        assert await leaked_thumbnails() == 0
    if fault is Fault.WYZE_2024:
        # Rotation by one over three single-camera tenants: every device is misowned.
        assert leaks_in_window == 6
    else:
        assert leaks_in_window == 0


async def test_wyze_other_tenants_event_ids_stay_hidden_outside_the_window() -> None:
    clock = FakeClock()
    config = make_config(["alice", "bob"], fault=Fault.WYZE_2024)
    async with relay_client(config, clock) as client:
        await push(client, "alice", "door", color_jpeg(1))
        [alice_event] = await feed(client, "alice")
        response = await client.get(alice_event["thumbnail"], headers=auth("bob"))
        assert response.status == 404


@pytest.mark.parametrize("fault", [Fault.NONE, Fault.STALE_CACHE])
async def test_stale_cache_keeps_serving_an_old_frame(fault: Fault) -> None:
    clock = FakeClock()
    config = make_config(["alice"], fault=fault, snapshot_ttl_seconds=0.5)
    async with relay_client(config, clock) as client:
        first, second = color_jpeg(1, seq=1), color_jpeg(1, seq=2)
        await push(client, "alice", "door", first)
        assert await snapshot(client, "alice", "alice", "door") == first
        await push(client, "alice", "door", second)
        clock.advance(30)
        served = await snapshot(client, "alice", "alice", "door")
        assert served == (first if fault is Fault.STALE_CACHE else second)


async def test_stale_cache_with_a_mis_set_ttl_refreshes_only_after_it() -> None:
    clock = FakeClock()
    config = make_config(["alice"], fault=Fault.STALE_CACHE, stale_ttl_seconds=120.0)
    async with relay_client(config, clock) as client:
        first, second = color_jpeg(1, seq=1), color_jpeg(1, seq=2)
        await push(client, "alice", "door", first)
        await snapshot(client, "alice", "alice", "door")
        await push(client, "alice", "door", second)
        clock.advance(60)
        assert await snapshot(client, "alice", "alice", "door") == first
        clock.advance(61)
        assert await snapshot(client, "alice", "alice", "door") == second


async def test_switching_the_fault_off_serves_fresh_frames_again() -> None:
    async with relay_client(make_config(["alice"], fault=Fault.STALE_CACHE)) as client:
        first, second = color_jpeg(1, seq=1), color_jpeg(1, seq=2)
        await push(client, "alice", "door", first)
        await snapshot(client, "alice", "alice", "door")
        await push(client, "alice", "door", second)
        assert await snapshot(client, "alice", "alice", "door") == first
        state = await admin(client, "PUT", "fault", fault="none")
        assert state["changed"] is True
        assert state["fault"] == "none"
        assert await snapshot(client, "alice", "alice", "door") == second


@pytest.mark.parametrize("fault", [Fault.NONE, Fault.IDOR])
async def test_idor_skips_the_owner_check_on_snapshots_only(fault: Fault) -> None:
    async with relay_client(make_config(["alice", "bob"], fault=fault)) as client:
        alice_frame = color_jpeg(1)
        await push(client, "alice", "door", alice_frame)
        response = await client.get("/v3/devices/alice/door/live.jpg", headers=auth("bob"))
        if fault is Fault.IDOR:
            assert response.status == 200
            assert await response.read() == alice_frame
        else:
            assert response.status == 403
        # Every other path still checks ownership, and a token is still required.
        stream = await client.get("/v3/devices/alice/door/stream.mjpg", headers=auth("bob"))
        assert stream.status == 403
        upload = await client.put("/v3/devices/alice/door/frame", data=color_jpeg(2), headers=auth("bob"))
        assert upload.status == 403
        anonymous = await client.get("/v3/devices/alice/door/live.jpg")
        assert anonymous.status == 401


async def test_unknown_fault_is_rejected_with_the_accepted_names() -> None:
    async with relay_client(make_config(["alice"])) as client:
        response = await client.put("/v3/admin/fault", headers=ADMIN, json={"fault": "heartbleed"})
        assert response.status == 400
        message = (await response.json())["message"]
        assert all(fault.value in message for fault in Fault)


# -- the correct relay never leaks under concurrency ---------------------------------


@dataclass(frozen=True)
class Camera:
    tenant: str
    name: str
    color: int


FRAMES_PER_CAMERA = 6


async def read_parts(response: aiohttp.ClientResponse, count: int | None = None) -> list[tuple[int, bytes]]:
    """(X-Frame-Seq, body) of MJPEG parts: ``count`` of them, or until the stream ends."""
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
    reader = aiohttp.MultipartReader(response.headers, response.content)
    parts: list[tuple[int, bytes]] = []
    while count is None or len(parts) < count:
        part = await reader.next()
        if part is None:
            break
        assert isinstance(part, aiohttp.BodyPartReader)
        parts.append((int(part.headers["X-Frame-Seq"]), bytes(await part.read())))
    return parts


async def test_correct_relay_never_leaks_under_concurrent_load() -> None:
    tenants = [f"tenant{i}" for i in range(8)]
    # Every tenant has cameras with the same names: the keying a leak would need.
    colors = iter(range(len(PALETTE)))
    cameras = [Camera(t, name, next(colors)) for t in tenants for name in ("door", "yard")]
    # Byte-exact origin of every original frame ever pushed.
    origin: dict[bytes, Camera] = {}
    frames = {
        camera: [color_jpeg(camera.color, seq=seq) for seq in range(1, FRAMES_PER_CAMERA + 1)]
        for camera in cameras
    }
    for camera, payloads in frames.items():
        origin.update(dict.fromkeys(payloads, camera))
    config = make_config(tenants, event_every_frames=2)
    served = 0

    def check(viewer: Camera, body: bytes, slow: bool) -> None:
        nonlocal served
        served += 1
        if slow:
            assert color_of(body) == viewer.color, f"{viewer} was served another camera"
        else:
            assert origin.get(body) == viewer, f"{viewer} was served another camera"

    async with relay_client(config) as client:

        async def camera_pushes(camera: Camera) -> None:
            for payload in frames[camera]:
                await push(client, camera.tenant, camera.name, payload)
                await asyncio.sleep(0)

        async def snapshot_poller(camera: Camera, slow: bool) -> None:
            path = f"/v3/devices/{camera.tenant}/{camera.name}/live.jpg"
            headers = {**auth(camera.tenant), **(SLOW if slow else {})}
            for _ in range(8):
                response = await client.get(path, headers=headers)
                if response.status == 404:  # camera not up yet
                    await asyncio.sleep(0)
                    continue
                assert response.status == 200
                check(camera, await response.read(), slow)

        async def stream_reader(camera: Camera, slow: bool) -> None:
            path = f"/v3/devices/{camera.tenant}/{camera.name}/stream.mjpg"
            headers = {**auth(camera.tenant), **(SLOW if slow else {})}
            async with client.get(path, headers=headers) as response:
                reader = aiohttp.MultipartReader(response.headers, response.content)
                # Frames may be skipped under load, never the last one: read until it.
                while True:
                    part = await reader.next()
                    assert isinstance(part, aiohttp.BodyPartReader)
                    check(camera, bytes(await part.read()), slow)
                    if int(part.headers["X-Frame-Seq"]) == FRAMES_PER_CAMERA:
                        break

        async with asyncio.timeout(15):  # a hang is a failure, not a slow pass
            await asyncio.gather(
                *(stream_reader(c, slow) for c in cameras for slow in (False, True)),
                *(camera_pushes(c) for c in cameras),
                *(snapshot_poller(c, slow) for c in cameras for slow in (False, True)),
            )

        for tenant in tenants:
            own = {c.name: c for c in cameras if c.tenant == tenant}
            events = await feed(client, tenant)
            # Frames 1, 3, 5 of each of the tenant's two cameras raised an event.
            assert len(events) == 2 * len(range(1, FRAMES_PER_CAMERA + 1, 2))
            thumbnails = await asyncio.gather(
                *(client.get(e["thumbnail"], headers=auth(tenant)) for e in events)
            )
            for event, response in zip(events, thumbnails, strict=True):
                assert response.status == 200
                check(own[event["camera"]], await response.read(), slow=True)
    # Every stream delivered at least its last frame; pollers add more.
    assert served >= 2 * len(cameras)


# -- MJPEG ---------------------------------------------------------------------------


async def test_mjpeg_sends_one_part_per_new_frame_in_order() -> None:
    async with relay_client(make_config(["alice"])) as client:
        pushed = [color_jpeg(1, seq=seq) for seq in (1, 2, 3)]
        await push(client, "alice", "door", pushed[0])
        async with client.get("/v3/devices/alice/door/stream.mjpg", headers=auth("alice")) as response:
            received = await read_parts(response, 1)  # the current frame at once
            for frame in pushed[1:]:
                await push(client, "alice", "door", frame)
                received += await read_parts(response, 1)
        assert received == [(1, pushed[0]), (2, pushed[1]), (3, pushed[2])]


async def test_kill_switch_ends_open_streams() -> None:
    async with relay_client(make_config(["alice"])) as client:
        await push(client, "alice", "door", color_jpeg(1))
        async with client.get("/v3/devices/alice/door/stream.mjpg", headers=auth("alice")) as response:
            assert len(await read_parts(response, 1)) == 1
            await admin(client, "POST", "kill")
            async with asyncio.timeout(5):
                assert await read_parts(response) == []  # closing boundary, no frame


# -- kill switch and outage -----------------------------------------------------------


async def test_kill_and_resume_are_idempotent_and_recorded() -> None:
    clock = FakeClock()
    async with relay_client(make_config(["alice"]), clock) as client:
        await push(client, "alice", "door", color_jpeg(1))
        first = await admin(client, "POST", "kill", actor="canarywatch", reason="cross_tenant")
        clock.advance(5)
        second = await admin(client, "POST", "kill", actor="someone-else", reason="again")
        assert (first["changed"], second["changed"]) == (True, False)
        assert second["enabled"] is False
        # The first kill's record stands: it is the one that stopped the leak.
        assert second["disabled"] == {
            "by": "canarywatch",
            "reason": "cross_tenant",
            "at": clock.now - 5,
        }

        for method, path in [
            ("GET", "/v3/devices/alice/door/live.jpg"),
            ("GET", "/v3/devices/alice/door/stream.mjpg"),
            ("GET", "/v3/events"),
            ("PUT", "/v3/devices/alice/door/frame"),
        ]:
            response = await client.request(
                method, path, headers=auth("alice"), data=color_jpeg(1) if method == "PUT" else None
            )
            assert response.status == 503
            body = await response.json()
            assert body["error"] == "integration_disabled"
            assert body["disabled_by"] == "canarywatch"
        assert (await client.get("/healthz")).status == 200

        resumed = await admin(client, "POST", "resume")
        again = await admin(client, "POST", "resume")
        assert (resumed["changed"], again["changed"]) == (True, False)
        assert again["enabled"] is True and again["disabled"] is None
        assert await snapshot(client, "alice", "alice", "door") == color_jpeg(1)


async def test_outage_answers_503_then_recovers() -> None:
    clock = FakeClock()
    async with relay_client(make_config(["alice"]), clock) as client:
        await push(client, "alice", "door", color_jpeg(1))
        await admin(client, "POST", "outage", seconds=30)
        clock.advance(10)
        for response in [
            await client.get("/v3/devices/alice/door/live.jpg", headers=auth("alice")),
            await client.put("/v3/devices/alice/door/frame", data=color_jpeg(1), headers=auth("alice")),
        ]:
            assert response.status == 503
            assert response.headers["Retry-After"] == "20"
            assert (await response.json())["error"] == "outage"
        state = await admin(client, "GET", "state")  # admin stays reachable
        assert state["phase"] == "outage"
        clock.advance(21)
        await push(client, "alice", "door", color_jpeg(1, seq=2))
        assert await snapshot(client, "alice", "alice", "door") == color_jpeg(1, seq=2)
        state = await admin(client, "GET", "state")
        assert state["counters"]["outages"] == 1
        assert state["counters"]["refused_outage"] == 2


@pytest.mark.parametrize("body", [{}, {"seconds": 0}, {"seconds": -1}, {"seconds": "5"}, {"seconds": 1e9}])
async def test_outage_rejects_bad_durations(body: dict[str, Any]) -> None:
    async with relay_client(make_config(["alice"])) as client:
        response = await client.post("/v3/admin/outage", headers=ADMIN, json=body)
        assert response.status == 400


async def test_event_feed_paging() -> None:
    async with relay_client(make_config(["alice"])) as client:
        for seq in range(1, 5):
            await push(client, "alice", "door", color_jpeg(1, seq=seq))
        first_page = await (await client.get("/v3/events?limit=3", headers=auth("alice"))).json()
        assert [e["id"] for e in first_page] == [1, 2, 3]
        rest = await (
            await client.get(f"/v3/events?since={first_page[-1]['id']}", headers=auth("alice"))
        ).json()
        assert [e["id"] for e in rest] == [4]
        assert rest[0]["camera"] == "door"
        bad = await client.get("/v3/events?since=yesterday", headers=auth("alice"))
        assert bad.status == 400


# -- pull ingest and the TCP entry point -------------------------------------------


@asynccontextmanager
async def snapshot_camera(frame: bytes) -> AsyncIterator[str]:
    """A camera serving ``frame`` at /snapshot.jpg, only with the right API key."""

    async def serve(request: web.Request) -> web.Response:
        if request.headers.get("X-Api-Key") != "cam-key":
            return web.Response(status=401)
        return web.Response(body=frame, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/snapshot.jpg", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/snapshot.jpg"
    finally:
        await runner.cleanup()


async def test_relay_pulls_configured_cameras_and_serves_them() -> None:
    frame = color_jpeg(4)
    async with snapshot_camera(frame) as url:
        source = PullSource(
            tenant="alice",
            camera="porch",
            url=url,
            headers={"X-Api-Key": "cam-key"},
            interval_seconds=0.01,
        )
        config = make_config(["alice"], pull_sources=(source,))
        async with await run_relay(config) as handle, aiohttp.ClientSession() as session:
            snapshot_url = f"{handle.base_url}/v3/devices/alice/porch/live.jpg"
            for _ in range(500):  # bounded: the first poll happens at startup
                async with session.get(snapshot_url, headers=auth("alice")) as response:
                    if response.status == 200:
                        assert await response.read() == frame
                        break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the pulled frame never became visible")
            assert handle.relay.state.counters.frames_pulled >= 1


async def test_run_relay_stop_ends_open_streams() -> None:
    async with aiohttp.ClientSession() as session:
        handle = await run_relay(make_config(["alice"]), port=0)
        assert handle.port > 0
        async with session.get(
            f"{handle.base_url}/v3/devices/alice/door/stream.mjpg", headers=auth("alice")
        ) as response:
            assert response.status == 200
            async with asyncio.timeout(5):
                await handle.stop()
                assert await read_parts(response) == []
        await handle.stop()  # idempotent


def test_palette_is_distinguishable_after_low_quality_transcode() -> None:
    """Guard for the tests above: identification by colour must itself be reliable."""
    for index in range(len(PALETTE)):
        image = cv2.imdecode(np.frombuffer(color_jpeg(index), np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        ok, low = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 10])
        assert ok and color_of(low.tobytes()) == index
