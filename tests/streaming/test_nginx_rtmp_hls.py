"""`canarywatch run` watching HLS from a real nginx-rtmp (Debian's nginx and
libnginx-mod-rtmp), fed over RTMP by ffmpeg publishers of canary cameras.

The server is configured the way an operator of a camera relay would: per-tenant
streams (``<tenant>_<camera>``), an ABR ladder (a 320×180 low rung and a 640×360 high
rung, with nginx-rtmp's master playlist), and per-tenant read access by bearer token.
A clean configuration shows every viewer its own frames on every network; each
realistic misconfiguration is caught as ``cross_tenant`` through the whole user path
(server → playlist → segments → frames → verdict → incident → kill switch).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from canarywatch.markers import Keyring
from streaming import NginxServer, Publisher, Rendition, require_nginx_rtmp, run_monitor, running

CLI = [sys.executable, "-m", "canarywatch.cli"]
TENANTS = {"acme": "t-acme", "bravo": "t-bravo"}

# nginx-rtmp writes <stream>.m3u8 (the master) listing <stream>_low and <stream>_hi.
LADDER = """
            hls_variant _low BANDWIDTH=250000,RESOLUTION=320x180;
            hls_variant _hi BANDWIDTH=1000000,RESOLUTION=640x360;
"""
# Which tenant a bearer token is; a request for another tenant's stream is refused.
TOKENS = (
    "map $http_authorization $viewer {\n"
    + "".join(f'        "Bearer {token}" {tenant};\n' for tenant, token in TENANTS.items())
    + '        default "";\n    }'
)
PER_TENANT = """
        location ~ ^/hls/(?<owner>[a-z]+)_[0-9]+ {
            if ($viewer != $owner) { return 403; }
            root {workdir};
            add_header Cache-Control no-cache;
        }
"""
# The "any user may read" block left in from setup.
OPEN_READ = """
        location /hls/ {
            root {workdir};
        }
"""
# bravo's low rung served from acme's folder (a copy-pasted alias): only a hub on a
# slow link, which falls to the low rung, is shown it.
ALIASED_LOW_RUNG = (
    """
        location ^~ /hls/bravo_0_low/ {
            if ($viewer != bravo) { return 403; }
            alias {hls}/acme_0_low/;
        }
"""
    + PER_TENANT
)


@dataclass(frozen=True)
class Scenario:
    locations: str
    #: the camera whose frames each tenant's publisher sends (default: its own).
    fed_by: tuple[tuple[str, str], ...] = ()


SCENARIOS = {
    "clean": Scenario(PER_TENANT),
    "open-read": Scenario(OPEN_READ),
    "publisher-fed-another-tenants-camera": Scenario(PER_TENANT, fed_by=(("bravo", "acme"),)),
    "aliased-low-rung": Scenario(ALIASED_LOW_RUNG),
}


@pytest.fixture(scope="module", autouse=True)
def _servers_installed() -> None:
    require_nginx_rtmp()


def _config(server: NginxServer, keyring: Path, workdir: Path) -> Path:
    playlist = {
        "url": server.http_url("/hls/{tenant}_{camera}.m3u8"),
        "headers": {"Authorization": "Bearer {token}"},
    }
    doc = {
        "integration": {
            "name": "nginx-hls",
            "camera": {"serve": {"port": 0}},  # the publishers feed nginx; these serve nobody
            "viewer": {"hls": playlist, "authzProbe": playlist},
            "killSwitch": {"command": {"argv": ["touch", str(workdir / "switched-off")]}},
            "policy": {"mode": "enforce"},
        },
        "probe": {
            "keyring": str(keyring),
            "tenants": [{"id": tenant, "token": token} for tenant, token in TENANTS.items()],
            "camerasPerTenant": 1,
            "fps": 1,
            "networkProfiles": ["good", "slow"],
            # 400 kbit/s: a player keeps 80 % for video, so the 1 Mbit/s rung is out of reach
            "customNetworkProfiles": [{"name": "slow", "bandwidth": "400kbit", "latency": "20ms"}],
            "transports": ["hls", "authz"],
            "freshnessByPath": {"hls": 12, "probe": 12},
        },
    }
    path = workdir / "monitor.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _wait_for_playlists(server: NginxServer, streams: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((server.hls_dir / f"{s}.m3u8").exists() for s in streams) and all(
            len(list((server.hls_dir / f"{s}_{rung}").glob("*.ts"))) >= 2
            for s in streams
            for rung in ("low", "hi")
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"nginx-rtmp wrote no HLS for {streams} in {timeout} s")


@pytest.fixture
def run_scenario(tmp_path: Path) -> Iterator[object]:
    keyring = Keyring.generate(TENANTS)
    keyring_path = tmp_path / "keyring.json"
    keyring_path.write_text(keyring.to_json())

    def run(name: str, duration: int = 14) -> tuple[dict[str, object], list[dict[str, object]]]:
        scenario = SCENARIOS[name]
        workdir = tmp_path / name
        workdir.mkdir()
        server = NginxServer(workdir, http_server="", rtmp_application=LADDER, http_block=TOKENS)
        server.http_server = scenario.locations.replace("{workdir}", str(workdir))
        fed_by = dict(scenario.fed_by)
        publishers = [
            Publisher(
                workdir,
                keyring,
                fed_by.get(tenant, tenant),
                0,
                [
                    Rendition(server.rtmp_url(f"{tenant}_0_low"), 320, 180, 150),
                    Rendition(server.rtmp_url(f"{tenant}_0_hi"), 640, 360, 600),
                ],
                name=f"publish-{tenant}",
            )
            for tenant in TENANTS
        ]
        with running(server, *publishers):
            _wait_for_playlists(server, [f"{t}_0" for t in TENANTS])
            return run_monitor(_config(server, keyring_path, workdir), workdir / "out", duration)

    yield run


def test_clean_server_shows_every_viewer_its_own_frames_on_every_network(run_scenario) -> None:  # type: ignore[no-untyped-def]
    summary, incidents = run_scenario("clean")
    assert incidents == [] and summary["state"] == "Active", summary
    by_path = summary["by_path"]
    for profile in ("good", "slow"):
        assert by_path[f"hls/{profile}"].get("ok", 0) >= 4, by_path
    assert set(summary["verdicts"]) == {"ok"}, summary["verdicts"]


@pytest.mark.parametrize(
    ("scenario", "path", "profiles"),
    [
        ("open-read", "probe", {"good", "slow"}),
        ("publisher-fed-another-tenants-camera", "hls", {"good", "slow"}),
        ("aliased-low-rung", "hls", {"slow"}),
    ],
)
def test_misconfiguration_is_caught_as_cross_tenant_and_switched_off(
    run_scenario,
    scenario: str,
    path: str,
    profiles: set[str],  # type: ignore[no-untyped-def]
) -> None:
    summary, incidents = run_scenario(scenario)
    assert incidents, summary
    first = incidents[0]
    assert first["verdict"] == "cross_tenant", first
    assert first["path"] == path and first["network_profile"] in profiles, first
    assert summary["state"] == "Suspended" and first["shutdown"]["done"], summary
    assert "foreign" not in summary["verdicts"] and "forged" not in summary["verdicts"], summary
