"""`canarywatch run` watching Low-Latency HLS (the ``llhls`` path) from the reference
relay's LL-HLS ladder (``…/hls/ll.m3u8``: parts with blocking reloads), as real
processes.

No server from Debian or pip produces LL-HLS parts (nginx-rtmp's HLS has none, ffmpeg's
hls muxer writes no EXT-X-PART, GStreamer's hlssink2 neither), so the relay is the
LL-HLS origin here; tests/component/test_viewer_llhls.py drives the reader against an
origin written to RFC 8216bis, and ffmpeg's fMP4 HLS is the ``hls`` path's.

Clean: every viewer sees its own camera part by part, ``ok``, no incident.
``xiaomi-2019`` (the low rung made by a cache keyed without the tenant) is caught as
``cross_tenant`` on the slow network's ``llhls`` stream and switched off.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from controlplane import free_port

from streaming import run_monitor, spawn, wait_for_port

TENANTS = {"acme": "t-acme", "bravo": "t-bravo"}
ADMIN = "admin-secret"

Run = Callable[[str], tuple[dict[str, object], list[dict[str, object]]]]


def _config(port: int, workdir: Path) -> Path:
    base = f"http://127.0.0.1:{port}/v3/devices/{{tenant}}/{{camera}}"
    token = {"Authorization": "Bearer {token}"}
    doc = {
        "integration": {
            "name": "relay-llhls",
            "camera": {"push": {"method": "PUT", "url": f"{base}/frame", "headers": token}},
            "viewer": {"llhls": {"url": f"{base}/hls/ll.m3u8", "headers": token}},
            "killSwitch": {
                "webhook": {
                    "method": "POST",
                    "url": f"http://127.0.0.1:{port}/v3/admin/kill",
                    "headers": {"Authorization": f"Bearer {ADMIN}"},
                }
            },
            "policy": {"mode": "enforce"},
        },
        "probe": {
            "tenants": [{"id": tenant, "token": token} for tenant, token in TENANTS.items()],
            "camerasPerTenant": 1,
            "fps": 4,
            "networkProfiles": ["good", "slow"],
            # 400 kbit/s: a player keeps 80 % for video, so the 1.5 Mbit/s rung is out of reach
            "customNetworkProfiles": [{"name": "slow", "bandwidth": "400kbit", "latency": "20ms"}],
            "transports": ["llhls"],
            # LL-HLS shows frames about half a second old here (a part, then a reload held
            # until the next): the bound leaves room for a loaded machine, tests assert no times
            "freshnessByPath": {"llhls": 6},
        },
    }
    path = workdir / "monitor.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def run_scenario(tmp_path: Path) -> Iterator[Run]:
    def run(fault: str) -> tuple[dict[str, object], list[dict[str, object]]]:
        workdir = tmp_path / fault
        workdir.mkdir()
        relay_config = workdir / "relay.yaml"
        relay_config.write_text(yaml.safe_dump({"tenants": TENANTS, "admin_token": ADMIN}))
        port = free_port()
        argv = [sys.executable, "-m", "canarywatch.cli", "relay", "--config", str(relay_config)]
        relay = spawn("relay", [*argv, "--port", str(port), "--fault", fault], workdir)
        try:
            wait_for_port(port, relay, timeout=30)
            return run_monitor(_config(port, workdir), workdir / "out", 14)
        finally:
            relay.stop(grace=5)

    yield run


def test_clean_relay_shows_every_viewer_its_own_frames_part_by_part(run_scenario: Run) -> None:
    summary, incidents = run_scenario("none")
    assert incidents == [] and summary["state"] == "Active", summary
    by_path = summary["by_path"]
    for profile in ("good", "slow"):
        # the slow link carries a part (a keyframe each) every second or so, and skips to the edge
        assert by_path[f"llhls/{profile}"].get("ok", 0) >= 3, by_path  # type: ignore[index]
    assert set(summary["verdicts"]) == {"ok"}, summary["verdicts"]  # type: ignore[arg-type]


def test_a_low_rung_cached_without_the_tenant_is_caught_on_the_llhls_path(run_scenario: Run) -> None:
    summary, incidents = run_scenario("xiaomi-2019")
    assert incidents, summary
    first = incidents[0]
    assert first["verdict"] == "cross_tenant" and first["path"] == "llhls", first
    assert first["network_profile"] == "slow", first  # only the low rung leaks
    assert summary["state"] == "Suspended" and first["shutdown"]["done"], summary  # type: ignore[index]
    assert "foreign" not in summary["verdicts"] and "forged" not in summary["verdicts"], summary  # type: ignore[operator]
