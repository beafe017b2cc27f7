"""canarywatch's own canary cameras publishing H.264 over RTMP (``camera.publish``) to a
real nginx-rtmp (Debian's nginx and libnginx-mod-rtmp), watched back as the HLS nginx
makes of it: every tenant's viewer is shown its own camera, nothing leaks, and what
the cameras published is seen (no ``FramesNotDelivered``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from canarywatch.markers import Keyring
from canarywatch.standalone import Pipeline, StandaloneConfig
from streaming import NginxServer, require_nginx_rtmp, running

TENANTS = ("acme", "bravo")


@pytest.fixture(scope="module", autouse=True)
def _servers_installed() -> None:
    require_nginx_rtmp()


async def test_cameras_publishing_rtmp_are_watched_back_over_hls(tmp_path: Path) -> None:
    keyring = Keyring.generate(TENANTS)
    # nginx-rtmp writes <hls>/<stream>/index.m3u8 for every stream published to `live`
    server = NginxServer(tmp_path, http_server=f"location /hls/ {{ root {tmp_path}; }}")
    rtmp = server.rtmp_url("{tenant}_{camera}") + "?token={token}"
    config = StandaloneConfig.from_mapping(
        {
            "integration": {
                "name": "nginx-rtmp",
                "camera": {
                    "publish": {"protocol": "rtmp", "url": rtmp, "keyframeInterval": 1, "bitrate": 300000}
                },
                "viewer": {"hls": {"url": server.http_url("/hls/{tenant}_{camera}/index.m3u8")}},
                "policy": {"mode": "dry-run"},
            },
            "probe": {
                "tenants": [{"id": t, "token": f"t-{t}"} for t in TENANTS],
                "fps": 4,
                "frameSize": {"width": 320, "height": 180},
                "networkProfiles": ["good"],
                "transports": ["hls"],
                "freshnessSeconds": 15,
            },
        }
    )
    with running(server):
        result = await Pipeline(config, keyring=keyring, out_dir=None).run(duration=20.0)
    summary = result.summary
    assert summary["incidents"] == [], summary
    assert summary["verdicts"].get("ok", 0) >= 4 and set(summary["verdicts"]) == {"ok"}, summary["verdicts"]
    cameras = summary["delivery"]["cameras"]
    assert {(c["tenant"], c["camera"]) for c in cameras if c["seen"] > 0} == {(t, 0) for t in TENANTS}
    assert summary["cameras"]["frames_published"] >= 40
