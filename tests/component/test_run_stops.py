"""The way out of a standalone run is bounded: a viewer stuck leaving (a WebRTC peer
connection whose close never returns, as aiortc's can) gives up on the close or is left
behind, named in the log either way, and the run still writes its verdicts and returns."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection
from standalone_configs import snapshot_watch

from canarywatch.markers import Keyring
from canarywatch.relay import RelayConfig, run_relay
from canarywatch.standalone import Pipeline, StandaloneConfig
from canarywatch.viewer.transports import whep
from canarywatch.webrtc import peer_connection

TENANTS = ("acme-7", "bravo-2")


class _StuckClosing:
    """Peer connections whose ``close()`` hangs until cancelled (then really closes, so
    the test leaves no socket or thread behind)."""

    def __init__(self) -> None:
        self.peers: list[RTCPeerConnection] = []
        #: the peers whose close was called, and the tasks stuck in it (aiortc starts
        #: one of its own when the remote ends DTLS, beside the viewer's).
        self.stuck: set[int] = set()
        self.closing: list[asyncio.Task[object]] = []

    def __call__(self) -> RTCPeerConnection:
        pc = peer_connection()
        really_close = pc.close

        async def close() -> None:
            self.stuck.add(id(pc))
            task = asyncio.current_task()
            assert task is not None
            self.closing.append(task)
            try:
                await asyncio.Event().wait()
            finally:
                await really_close()

        pc.close = close  # type: ignore[method-assign]
        self.peers.append(pc)
        return pc


async def test_a_run_whose_webrtc_viewers_never_close_still_ends_with_its_verdicts(
    keyring: Keyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    peers = _StuckClosing()
    monkeypatch.setattr(whep, "peer_connection", peers)
    relay = await run_relay(RelayConfig(tenants={t: f"token-{t}" for t in TENANTS}, admin_token="admin"))
    doc = snapshot_watch(relay.base_url, TENANTS)
    whep_url = relay.base_url + "/v3/devices/{tenant}/{camera}/whep"
    doc["integration"]["viewer"] = {"whep": {"url": whep_url, "headers": {"Authorization": "Bearer {token}"}}}
    doc["probe"] |= {"transports": ["whep"], "freshnessByPath": {"whep": 3}}
    pipeline = Pipeline(StandaloneConfig.from_mapping(doc), keyring=keyring, out_dir=tmp_path)
    caplog.set_level(logging.WARNING, logger="canarywatch")
    left_behind: list[asyncio.Task[object]] = []
    try:
        async with asyncio.timeout(60):  # a run that never returns fails here, not by hanging the suite
            result = await pipeline.run(duration=4.0)
    finally:
        # cancelled once more (as the loop's teardown would), the stuck closes really close
        streams = {s.stream.key for s in pipeline.streams}
        left_behind = [t for t in asyncio.all_tasks() if t.get_name() in streams]
        for task in (*left_behind, *peers.closing):
            task.cancel()
        if left_behind or peers.closing:
            await asyncio.wait([*left_behind, *peers.closing], timeout=30)
        await relay.stop()
    assert len(peers.stuck) >= len(TENANTS), peers.stuck  # every viewer's close hung
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["verdicts"].get("ok", 0) >= 2 and summary["incidents"] == [], summary["verdicts"]
    assert summary["verdicts"] == result.summary["verdicts"]
    assert "did not close within" in caplog.text or "left behind" in caplog.text, caplog.text
    assert all(t.done() for t in left_behind)
