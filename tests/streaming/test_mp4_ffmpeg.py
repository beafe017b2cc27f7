"""`canarywatch run` watching HTTP progressive MP4 served by real servers: ffmpeg's HTTP
server (Debian's ffmpeg, ``-f mp4 -movflags frag_keyframe+empty_moov -listen 1``)
re-serving each camera's live RTMP stream from nginx-rtmp as a fragmented MP4, behind
nginx (per-tenant bearer tokens, one ``upstream`` pool of ffmpeg listeners per camera),
as a camera cloud serves ``progressive_mp4`` to a smart display.

A clean configuration shows each tenant its own camera on the ``mp4`` path (``ok``, no
incident); bravo's MP4 location aliased to acme's stream (a copy-pasted
``proxy_pass``) is caught as ``cross_tenant`` by bravo's own viewer, and a location
that lets any user read (no token check) by the authorization probe, which follows the
never-ending body it is granted to a frame; both are switched off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from mp4_server import Mp4Listeners

from canarywatch.markers import Keyring
from streaming import NginxServer, Publisher, Rendition, require_nginx_rtmp, run_monitor, running

TENANTS = {"acme": "t-acme", "bravo": "t-bravo"}

TOKENS = (
    "map $http_authorization $viewer {\n"
    + "".join(f'        "Bearer {token}" {tenant};\n' for tenant, token in TENANTS.items())
    + '        default "";\n    }'
)
# Live MP4 through nginx: no buffering (a frame is passed on as ffmpeg writes it); a busy
# listener (ffmpeg serves one client) is skipped for the next one of the pool.
PROXY = """
            proxy_http_version 1.1;
            proxy_buffering off;
            proxy_read_timeout 60s;
            proxy_next_upstream error timeout;
"""
PER_TENANT = (
    """
        location ~ ^/mp4/(?<owner>[a-z]+)_0\\.mp4$ {
            if ($viewer != $owner) { return 403; }
            proxy_pass http://$owner;
"""
    + PROXY
    + "        }\n"
)
# bravo's location copy-pasted from acme's: it serves acme's camera to bravo's token.
ALIASED = (
    """
        location = /mp4/bravo_0.mp4 {
            if ($viewer != bravo) { return 403; }
            proxy_pass http://acme;
"""
    + PROXY
    + "        }\n"
    + PER_TENANT
)

# The "any user may read" location left in from setup.
OPEN_READ = (
    """
        location ~ ^/mp4/(?<owner>[a-z]+)_0\\.mp4$ {
            proxy_pass http://$owner;
"""
    + PROXY
    + "        }\n"
)

Run = Callable[[str], tuple[dict[str, object], list[dict[str, object]]]]


@pytest.fixture(scope="module", autouse=True)
def _servers_installed() -> None:
    require_nginx_rtmp()


def _config(server: NginxServer, keyring: Path, workdir: Path) -> Path:
    endpoint = {
        "url": server.http_url("/mp4/{tenant}_{camera}.mp4"),
        "headers": {"Authorization": "Bearer {token}"},
    }
    doc = {
        "integration": {
            "name": "ffmpeg-mp4",
            "camera": {"serve": {"port": 0}},  # the publishers feed nginx-rtmp; these serve nobody
            "viewer": {"mp4": endpoint, "authzProbe": endpoint},
            "killSwitch": {"command": {"argv": ["touch", str(workdir / "switched-off")]}},
            "policy": {"mode": "enforce"},
        },
        "probe": {
            "keyring": str(keyring),
            "tenants": [{"id": tenant, "token": token} for tenant, token in TENANTS.items()],
            "camerasPerTenant": 1,
            "fps": 1,
            "networkProfiles": ["good"],
            "transports": ["mp4", "authz"],
            # an idle listener of the pool holds the seconds RTMP queued while it waited
            "freshnessByPath": {"mp4": 15, "probe": 15},
        },
    }
    path = workdir / "monitor.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def run_scenario(tmp_path: Path) -> Iterator[Run]:
    keyring = Keyring.generate(TENANTS)
    keyring_path = tmp_path / "keyring.json"
    keyring_path.write_text(keyring.to_json())

    def run(locations: str) -> tuple[dict[str, object], list[dict[str, object]]]:
        workdir = tmp_path / str(abs(hash(locations)))
        workdir.mkdir()
        server = NginxServer(workdir, http_server=locations, loopback_play=True)
        pools = [
            Mp4Listeners(workdir, tenant, server.rtmp_url(f"{tenant}_0")).allocate() for tenant in TENANTS
        ]
        server.http_block = TOKENS + "\n" + "".join(pool.upstream() for pool in pools)
        publishers = [
            Publisher(
                workdir, keyring, tenant, 0, [Rendition(server.rtmp_url(f"{tenant}_0"))], name=f"pub-{tenant}"
            )
            for tenant in TENANTS
        ]
        with running(server, *publishers):
            try:
                for pool in pools:
                    pool.start()
                return run_monitor(_config(server, keyring_path, workdir), workdir / "out", 16)
            finally:
                for pool in pools:
                    pool.stop()

    yield run


def test_clean_mp4_server_shows_each_tenant_its_own_camera(run_scenario: Run) -> None:
    summary, incidents = run_scenario(PER_TENANT)
    assert incidents == [] and summary["state"] == "Active", summary
    by_path = summary["by_path"]
    assert by_path["mp4/good"].get("ok", 0) >= 6, by_path  # type: ignore[index]
    assert "cross_tenant" not in summary["verdicts"] and "foreign" not in summary["verdicts"], summary  # type: ignore[operator]


@pytest.mark.parametrize(
    ("locations", "path"), [(ALIASED, "mp4"), (OPEN_READ, "probe")], ids=["aliased", "open-read"]
)
def test_an_mp4_misconfiguration_is_caught_as_cross_tenant_and_switched_off(
    run_scenario: Run, locations: str, path: str
) -> None:
    summary, incidents = run_scenario(locations)
    assert incidents, summary
    first = incidents[0]
    assert first["verdict"] == "cross_tenant" and first["path"] == path, first
    assert summary["state"] == "Suspended" and first["shutdown"]["done"], summary  # type: ignore[index]
    assert "foreign" not in summary["verdicts"] and "forged" not in summary["verdicts"], summary  # type: ignore[operator]
