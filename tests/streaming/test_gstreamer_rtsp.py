"""`canarywatch run` watching RTSP from a real GStreamer RTSP server (Debian's
gir1.2-gst-rtsp-server-1.0, run by ``tests/support/rtsp_server.py``) with per-tenant
users (Basic or Digest) and per-tenant mounts, each re-serving the H.264 RTP an ffmpeg
publisher of a canary camera sends it.

A clean configuration shows each tenant its own camera (``ok``, no incident) with either
authentication; a tenant's publisher fed another tenant's camera is caught as
``cross_tenant`` by that tenant's own RTSP viewer and switched off.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from availability import unavailable
from controlplane import free_port

from canarywatch.markers import Keyring
from streaming import Publisher, Rendition, require_binaries, run_monitor, running, spawn, wait_for_port

CLI = [sys.executable, "-m", "canarywatch.cli"]
TENANTS = {"acme": "t-acme", "bravo": "t-bravo"}
SERVER = Path(__file__).parents[1] / "support" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"

Run = Callable[..., tuple[dict[str, object], list[dict[str, object]]]]


@pytest.fixture(scope="module", autouse=True)
def _servers_installed() -> None:
    require_binaries("ffmpeg")
    check = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if check.returncode != 0:
        unavailable(
            "the GStreamer RTSP server's Python bindings are missing; run hack/install-streaming-servers.sh"
        )


class RtspServer:
    """The GStreamer RTSP server as a thing ``running`` starts and stops."""

    def __init__(self, workdir: Path, config: dict[str, object]) -> None:
        self.workdir, self.config = workdir, config
        self.daemon = None

    def start(self) -> None:
        path = self.workdir / "rtsp.json"
        path.write_text(json.dumps(self.config))
        self.daemon = spawn("rtsp-server", [SYSTEM_PYTHON, str(SERVER), str(path)], self.workdir)
        wait_for_port(int(self.config["port"]), self.daemon)  # type: ignore[call-overload]

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop(grace=5)


@pytest.fixture
def run_rtsp(tmp_path: Path) -> Iterator[Run]:
    keyring = Keyring.generate(TENANTS)
    keyring_path = tmp_path / "keyring.json"
    keyring_path.write_text(keyring.to_json())

    def run(
        name: str, *, auth: str = "basic", fed_by: dict[str, str] | None = None, duration: int = 12
    ) -> tuple[dict[str, object], list[dict[str, object]]]:
        workdir = tmp_path / name
        workdir.mkdir()
        port = free_port()
        rtp = {tenant: free_port() for tenant in TENANTS}
        server = RtspServer(
            workdir,
            {
                "port": port,
                "auth": auth,
                "users": TENANTS,
                "mounts": {f"/{t}/0": {"rtp_port": rtp[t], "readers": [t]} for t in TENANTS},
            },
        )
        publishers = [
            Publisher(
                workdir,
                keyring,
                (fed_by or {}).get(tenant, tenant),
                0,
                [Rendition(f"rtp://127.0.0.1:{rtp[tenant]}", 640, 360, 500, format="rtp")],
                name=f"publish-{tenant}",
            )
            for tenant in TENANTS
        ]
        config = {
            "integration": {
                "name": "gstreamer-rtsp",
                "camera": {"serve": {"port": 0}},
                "viewer": {
                    "rtsp": {"url": f"rtsp://{{tenant}}:{{token}}@127.0.0.1:{port}/{{tenant}}/{{camera}}"}
                },
                "killSwitch": {"command": {"argv": ["touch", str(workdir / "switched-off")]}},
            },
            "probe": {
                "keyring": str(keyring_path),
                "tenants": [{"id": tenant, "token": token} for tenant, token in TENANTS.items()],
                "camerasPerTenant": 1,
                "fps": 1,
                "networkProfiles": ["good"],
                "transports": ["rtsp"],
                "freshnessByPath": {"rtsp": 8},
            },
        }
        (workdir / "monitor.yaml").write_text(yaml.safe_dump(config))
        with running(server, *publishers):  # type: ignore[arg-type]
            return run_monitor(workdir / "monitor.yaml", workdir / "out", duration)

    yield run


@pytest.mark.parametrize("auth", ["basic", "digest"])
def test_clean_server_shows_each_tenant_its_own_camera(run_rtsp: Run, auth: str) -> None:
    summary, incidents = run_rtsp(f"clean-{auth}", auth=auth)
    assert incidents == [] and summary["state"] == "Active", summary
    assert summary["by_path"]["rtsp/good"].get("ok", 0) >= 4, summary["by_path"]  # type: ignore[index]
    assert set(summary["verdicts"]) == {"ok"}, summary["verdicts"]  # type: ignore[arg-type]


def test_a_publisher_fed_another_tenants_camera_is_caught(run_rtsp: Run) -> None:
    summary, incidents = run_rtsp("fed-another", auth="digest", fed_by={"bravo": "acme"})
    assert incidents, summary
    first = incidents[0]
    assert first["verdict"] == "cross_tenant" and first["path"] == "rtsp", first
    assert first["viewer_tenant"] == "bravo" and first["observed_tenant"] == "acme", first
    assert summary["state"] == "Suspended", summary
