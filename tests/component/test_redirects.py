"""No credential crosses an origin, on any HTTP client path canarywatch has.

Two small aiohttp servers on loopback are two origins (same host, other port): the
first answers with a redirect to the second, which records what it received. Every
client path is driven through its real code: a viewer's snapshot poll and MJPEG stream
(through the shaper, as the runner does), a canary camera's push, a kill-switch webhook
and the PagerDuty client.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import canarywatch
from canarywatch.camera.fleet import CameraFleet, CanaryCamera, PushTarget
from canarywatch.httpclient import client_session
from canarywatch.incidents.pagerduty import Outcome, PagerDutyClient, build_event
from canarywatch.shutdown import KillSwitch, Result, WebhookAction, WebhookRequest
from canarywatch.viewer.http import RequestTemplate
from canarywatch.viewer.network import GOOD, Shaper
from canarywatch.viewer.transports import SnapshotPoller

SECRET_HEADERS = {
    "X-Api-Key": "viewer-api-key",
    "Authorization": "Bearer viewer-token",
    "Cookie": "session=viewer-cookie",
}
ROUTING_KEY = "0123456789abcdef0123456789abcdef"


@dataclass
class Origin:
    """One origin: answers ``redirect`` (status, location) on ``/start``, else 200."""

    #: (path, headers, body) of each request received
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    redirect: tuple[int, str] | None = None
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.path, dict(request.headers), await request.read()))
        if request.path.startswith("/start") and self.redirect is not None:
            status, location = self.redirect
            return web.Response(status=status, headers={"Location": location})
        if request.path.endswith(".mjpg"):
            response = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=b"})
            await response.prepare(request)
            await response.write(b"--b\r\nContent-Type: image/jpeg\r\nContent-Length: 3\r\n\r\nabc\r\n")
            return response
        return web.Response(body=b"jpeg-bytes", content_type="image/jpeg")

    def secrets_seen(self) -> set[str]:
        """Which of the credentials (by header name) reached this origin, in any form."""
        found = set()
        for _path, headers, body in self.seen:
            text = repr(headers) + body.decode(errors="replace")
            found |= {name for name, value in SECRET_HEADERS.items() if value.split("=")[-1] in text}
            if ROUTING_KEY in text:
                found.add("routing_key")
        return found


@contextlib.asynccontextmanager
async def serving(origin: Origin) -> AsyncIterator[Origin]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", origin.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    origin.url = str(server.make_url("")).rstrip("/")
    try:
        yield origin
    finally:
        await server.close()


@pytest.fixture
async def first() -> AsyncIterator[Origin]:
    async with serving(Origin()) as running:
        yield running


@pytest.fixture
async def elsewhere() -> AsyncIterator[Origin]:
    async with serving(Origin()) as running:
        yield running


async def one_snapshot(url: str) -> int:
    request = RequestTemplate(url=url, headers=SECRET_HEADERS, where="test").render(
        tenant="acme", camera="1", token="t"
    )
    async with client_session() as session:
        poller = SnapshotPoller(session, request, interval_s=0.01, shaper=Shaper(GOOD))
        frames = poller.frames()
        try:
            frame = await anext(frames)
        finally:
            await frames.aclose()
    return frame.status


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_snapshot_redirect_to_another_origin_carries_no_credential(
    first: Origin, elsewhere: Origin, status: int
) -> None:
    first.redirect = (status, f"{elsewhere.url}/moved.jpg")
    assert await one_snapshot(f"{first.url}/start.jpg") == 200
    assert first.secrets_seen() == {"X-Api-Key", "Authorization", "Cookie"}
    assert [path for path, _, _ in elsewhere.seen] == ["/moved.jpg"]  # followed, as a hub would
    assert elsewhere.secrets_seen() == set()


async def test_same_origin_redirect_keeps_the_credentials(first: Origin) -> None:
    first.redirect = (302, "/moved.jpg")
    assert await one_snapshot(f"{first.url}/start.jpg") == 200
    assert [path for path, _, _ in first.seen] == ["/start.jpg", "/moved.jpg"]
    assert first.seen[1][1]["X-Api-Key"] == "viewer-api-key"


async def test_a_chain_back_through_another_origin_never_leaks_there(
    first: Origin, elsewhere: Origin
) -> None:
    first.redirect = (302, f"{elsewhere.url}/start-back")
    elsewhere.redirect = (302, f"{elsewhere.url}/hop.jpg")
    assert await one_snapshot(f"{first.url}/start.jpg") == 200
    assert [path for path, _, _ in elsewhere.seen] == ["/start-back", "/hop.jpg"]
    assert elsewhere.secrets_seen() == set()


async def test_mjpeg_stream_redirect_carries_no_credential(first: Origin, elsewhere: Origin) -> None:
    first.redirect = (307, f"{elsewhere.url}/live.mjpg")
    shaper = Shaper(GOOD)
    async with (
        client_session() as session,
        shaper.stream(session, "GET", f"{first.url}/start.mjpg", headers=SECRET_HEADERS, timeout=5) as stream,
    ):
        assert stream.status == 200
        assert b"abc" in await anext(stream)
    assert elsewhere.secrets_seen() == set()


async def test_camera_push_is_not_resent_to_another_origin(first: Origin, elsewhere: Origin) -> None:
    first.redirect = (307, f"{elsewhere.url}/ingest")
    camera = CanaryCamera("acme", 1, b"k" * 32, width=160, height=90)
    fleet = CameraFleet([camera], fps=20)
    target = PushTarget("PUT", f"{first.url}/start/acme/1", headers=SECRET_HEADERS)
    task = asyncio.create_task(fleet.run_push({("acme", 1): target}))
    try:
        while camera.failed + camera.published < 2:
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert first.seen and camera.published == 0
    assert elsewhere.seen == []


async def test_webhook_redirect_is_not_followed(first: Origin, elsewhere: Origin) -> None:
    first.redirect = (307, f"{elsewhere.url}/kill")
    hook = WebhookAction(
        name="hook",
        request=WebhookRequest(url=f"{first.url}/start/kill", headers={"X-Api-Key": "viewer-api-key"}),
        max_attempts=1,
    )
    (result,) = (await KillSwitch([hook], integration="relay").engage("inc-1", "leak")).engage_results
    assert result.result is Result.FAILED and "redirects are not followed" in result.detail
    assert elsewhere.seen == []


@pytest.mark.parametrize("status", [301, 307, 308])
async def test_pagerduty_event_is_not_resent_to_another_origin(
    first: Origin, elsewhere: Origin, status: int
) -> None:
    first.redirect = (status, f"{elsewhere.url}/v2/enqueue")
    client = PagerDutyClient(url=f"{first.url}/start/v2/enqueue", max_attempts=1, base_delay=0.001)
    try:
        result = await client.send(
            build_event(action="resolve", routing_key=ROUTING_KEY, dedup_key="canarywatch/relay/inc-1")
        )
    finally:
        await client.close()
    assert result.outcome is not Outcome.DELIVERED
    assert elsewhere.seen == []


def _raw_session_calls(tree: ast.AST) -> list[int]:
    """Lines that open an aiohttp session or request directly, however it was imported:
    ``aiohttp.ClientSession()``, ``import aiohttp as ah; ah.request()``,
    ``from aiohttp import ClientSession as S; S()``, ``aiohttp.client.ClientSession()``."""
    forbidden = {"ClientSession", "request"}
    modules = {"aiohttp"}
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name.split(".")[0] == "aiohttp"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "aiohttp":
            names |= {a.asname or a.name for a in node.names if a.name in forbidden}
            modules |= {a.asname or a.name for a in node.names if a.name == "client"}
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in names:
            lines.append(node.lineno)
        elif isinstance(func, ast.Attribute) and func.attr in forbidden:
            root = func.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in modules:
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    "source",
    [
        "import aiohttp\naiohttp.ClientSession()",
        "import aiohttp as ah\nah.request('GET', 'http://x')",
        "from aiohttp import ClientSession\nClientSession()",
        "from aiohttp import ClientSession as S\nS()",
        "import aiohttp.client\naiohttp.client.ClientSession()",
        "from aiohttp import client\nclient.ClientSession()",
    ],
)
def test_the_raw_session_guard_sees_every_spelling(source: str) -> None:
    assert _raw_session_calls(ast.parse(source)) == [2]


def test_every_client_session_comes_from_the_shared_factory() -> None:
    """The rule above holds for code written later only if nobody opens a raw session."""
    package = Path(canarywatch.__file__).parent
    offenders = [
        f"{path.relative_to(package)}:{line}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "httpclient.py"
        for line in _raw_session_calls(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert offenders == [], "open sessions with canarywatch.httpclient.client_session()"
