"""`canarywatch run` with WebRTC both ways, against a real WHIP/WHEP server: Pion's
upstream ``whip-whep`` example (github.com/pion/webrtc/v4, built by
hack/install-whep-server.sh), one per tenant, each in a network namespace of the test's
own (``netns``), behind nginx on 127.0.0.1 holding per-tenant paths and Bearer tokens
(``/{tenant}/{camera}/whip``, ``/whep``), as a vendor fronts its media servers.

canarywatch's own canary cameras publish H.264 over WHIP (``camera.publish.protocol:
whip``) and its viewers watch over WHEP (``viewer.whep``), ICE between the host and
each namespace's veth. A clean configuration shows each tenant its own camera (``ok``
frames, no incident, what was published is seen); an ingest map that feeds each
tenant's media server the other tenant's camera is caught as ``cross_tenant`` by the
viewer's own WHEP stream and switched off.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from availability import unavailable
from netns import NamespacedServer, require_netns

from canarywatch.markers import Keyring
from streaming import NginxServer, require_nginx_rtmp, run_monitor, running, wait_for_port

TENANTS = {"acme": "t-acme", "bravo": "t-bravo"}
INSTALLER = Path(__file__).parents[2] / "hack" / "install-whep-server.sh"

Run = Callable[..., tuple[dict[str, object], list[dict[str, object]]]]


@pytest.fixture(scope="module")
def pion_server() -> Path:
    require_nginx_rtmp()
    require_netns()
    built = subprocess.run([str(INSTALLER)], capture_output=True, text=True, check=False, timeout=900)
    if built.returncode != 0:
        unavailable(f"hack/install-whep-server.sh failed:\n{built.stderr[-2000:]}")
    return Path(built.stdout.strip())


class _Pion(NamespacedServer):
    """The server listens on :8080 of its own namespace; reached through the veth."""

    def start(self) -> _Pion:
        super().start()
        assert self.daemon is not None
        wait_for_port(8080, self.daemon, host=self.address)
        return self


def _gateway(media: dict[str, _Pion], ingest: dict[str, str]) -> str:
    """nginx locations: each tenant's WHEP path to its own media server, its WHIP path
    to ``ingest[tenant]``'s; each only with that tenant's Bearer token."""
    locations = []
    for tenant, token in TENANTS.items():
        for kind, owner in (("whip", ingest[tenant]), ("whep", tenant)):
            locations.append(
                f"""
        location = /{tenant}/0/{kind} {{
            if ($http_authorization != "Bearer {token}") {{ return 401; }}
            proxy_pass http://{media[owner].address}:8080/{kind};
            proxy_read_timeout 30s;
        }}"""
            )
    return "\n".join(locations)


@pytest.fixture
def run_webrtc(tmp_path: Path, pion_server: Path) -> Iterator[Run]:
    keyring = Keyring.generate(TENANTS)
    keyring_path = tmp_path / "keyring.json"
    keyring_path.write_text(keyring.to_json())

    def run(
        name: str, *, fed_by: dict[str, str] | None = None, duration: int = 15
    ) -> tuple[dict[str, object], list[dict[str, object]]]:
        workdir = tmp_path / name
        workdir.mkdir()
        media = {t: _Pion(workdir, f"pion-{t}", [str(pion_server)]) for t in TENANTS}
        # fed_by: tenant -> whose camera its media server is fed (the ingest map's bug)
        owners = {t: (fed_by or {}).get(t, t) for t in TENANTS}
        ingest = {camera_owner: server for server, camera_owner in owners.items()}
        with running(*media.values()):  # type: ignore[arg-type]
            gateway = NginxServer(workdir, http_server=_gateway(media, ingest))
            base = f"http://127.0.0.1:{gateway.http_port}"
            auth = {"Authorization": "Bearer {token}"}
            config = {
                "integration": {
                    "name": "pion-whip-whep",
                    "camera": {
                        "publish": {
                            "protocol": "whip",
                            "url": base + "/{tenant}/{camera}/whip",
                            "headers": auth,
                            "keyframeInterval": 1,
                            "bitrate": 500000,
                        }
                    },
                    "viewer": {"whep": {"url": base + "/{tenant}/{camera}/whep", "headers": auth}},
                    "killSwitch": {"command": {"argv": ["touch", str(workdir / "switched-off")]}},
                },
                "probe": {
                    "keyring": str(keyring_path),
                    "tenants": [{"id": tenant, "token": token} for tenant, token in TENANTS.items()],
                    "camerasPerTenant": 1,
                    "fps": 10,
                    "networkProfiles": ["good"],
                    "transports": ["whep"],
                    "freshnessByPath": {"whep": 3},
                },
            }
            (workdir / "monitor.yaml").write_text(yaml.safe_dump(config))
            with running(gateway):
                result = run_monitor(workdir / "monitor.yaml", workdir / "out", duration)
            return result

    yield run


def test_clean_servers_show_each_tenant_its_own_camera(run_webrtc: Run) -> None:
    summary, incidents = run_webrtc("clean")
    assert incidents == [] and summary["state"] == "Active", summary
    assert summary["by_path"]["whep/good"].get("ok", 0) >= 6, summary["by_path"]  # type: ignore[index]
    assert set(summary["verdicts"]) == {"ok"}, summary["verdicts"]  # type: ignore[arg-type]
    cameras = summary["delivery"]["cameras"]  # type: ignore[index]
    assert {(c["tenant"], c["camera"]) for c in cameras if c["seen"] > 0} == {(t, 0) for t in TENANTS}


def test_a_media_server_fed_another_tenants_camera_is_caught(run_webrtc: Run, tmp_path: Path) -> None:
    summary, incidents = run_webrtc("fed-another", fed_by={"bravo": "acme", "acme": "bravo"})
    assert incidents, summary
    first = incidents[0]
    assert first["verdict"] == "cross_tenant" and first["path"] == "whep", first
    assert {first["viewer_tenant"], first["observed_tenant"]} == set(TENANTS), first
    assert summary["state"] == "Suspended", summary
    assert (tmp_path / "fed-another" / "switched-off").exists()
