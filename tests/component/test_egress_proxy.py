"""Behind an egress proxy: pages and kill-switch webhooks go through the proxy that
``HTTP(S)_PROXY`` names, and ``NO_PROXY`` hosts are reached directly
(``canarywatch.outbound``). The proxy is a real one (``pproxy``, from PyPI) on
127.0.0.1 whose log says which connections it relayed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from canarywatch.incidents.pagerduty import Outcome, PagerDutyClient, build_event
from canarywatch.incidents.receiver import EventsReceiver
from canarywatch.shutdown import KillSwitch, SwitchState, WebhookAction, WebhookRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from controlplane import free_port
from polling import eventually

ROUTING_KEY = "0123456789abcdef0123456789abcdef"
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "ALL_PROXY",
)


class Proxy:
    """``pproxy`` serving plain HTTP proxying on 127.0.0.1; ``relayed`` lists the
    ``host:port`` of every connection it forwarded."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("pproxy")), "-l", self.url, "-v"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def relayed(self) -> list[str]:
        return re.findall(r"-> (\S+)", self.log.read_text(errors="replace"))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxy]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    running = Proxy(tmp_path / "proxy.log")
    try:
        eventually(lambda: "Serving on" in running.log.read_text(errors="replace"), 20, "pproxy to listen")
        yield running
    finally:
        running.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[EventsReceiver]:
    async with EventsReceiver() as running:
        yield running


def trigger(dedup_key: str) -> dict[str, object]:
    return build_event(
        action="trigger",
        routing_key=ROUTING_KEY,
        dedup_key=dedup_key,
        summary="cross_tenant: tenant bravo was shown camera alpha/cam-1",
        source="reference-relay",
        severity="critical",
    )


async def page(url: str, dedup_key: str) -> Outcome:
    async with PagerDutyClient(
        url=url, timeout=5.0, max_attempts=2, base_delay=0.001, max_delay=0.01
    ) as client:
        return (await client.send(trigger(dedup_key))).outcome


async def test_pages_go_through_the_proxy_the_environment_names(
    proxy: Proxy, receiver: EventsReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = receiver.url.split("/")[2]  # 127.0.0.1:PORT
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    assert await page(receiver.url, "canarywatch/relay/inc-1") is Outcome.DELIVERED
    assert proxy.relayed() == [target]
    assert [e["dedup_key"] for e in receiver.events] == ["canarywatch/relay/inc-1"]

    # NO_PROXY: straight to the endpoint, the proxy sees nothing more.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert await page(receiver.url, "canarywatch/relay/inc-2") is Outcome.DELIVERED
    assert proxy.relayed() == [target]
    assert len(receiver.events) == 2


async def test_kill_switch_webhooks_go_through_the_proxy(
    proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    async def kill(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/kill/{integration}", kill)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = int(runner.addresses[0][1])
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        action = WebhookAction(
            name="admin-kill",
            request=WebhookRequest(url=f"http://127.0.0.1:{port}/kill/{{integration}}"),
            base_delay=0.001,
            max_delay=0.005,
            timeout=5.0,
        )
        record = await KillSwitch([action], integration="relay-prod").engage("inc-7", "cross_tenant")
        assert record.state is SwitchState.ENGAGED
        assert seen == ["/kill/relay-prod"]
        assert proxy.relayed() == [f"127.0.0.1:{port}"]
    finally:
        await runner.cleanup()
