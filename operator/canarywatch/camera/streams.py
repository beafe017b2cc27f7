"""``camera.publish``: cameras that hold a stream open, read once for both shells.

The CRD's ``spec.camera.publish`` (and the standalone file's ``integration.camera.publish``)
names a protocol and a URL template: ``rtsp`` and ``rtmp`` publish H.264
(``camera.video``), ``whip`` H.264 over WebRTC (``camera.whip``; headers carry the
token, ``Authorization: Bearer {token}``), ``mjpeg`` one long multipart POST
(``CameraFleet.run_mjpeg_post``).
``StreamPublish.from_mapping`` reads the block (defaults already applied by the CRD's
schema); ``publish_streams`` runs every camera of a fleet with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from canarywatch.viewer.http import AdapterConfigError, RenderedRequest, RequestTemplate

if TYPE_CHECKING:  # the cameras themselves are imported where they run: reading a config
    from canarywatch.camera.fleet import CameraFleet  # loads neither OpenCV nor PyAV

__all__ = ["PUBLISH_PROTOCOLS", "RequestSource", "StreamPublish", "publish_streams"]

#: ``camera.publish.protocol`` values.
PUBLISH_PROTOCOLS = ("rtsp", "rtmp", "mjpeg", "whip")

_SCHEMES = {
    "rtsp": ("rtsp", "rtsps"),
    "rtmp": ("rtmp", "rtmps"),
    "mjpeg": ("http", "https"),
    "whip": ("http", "https"),
}

#: Renders a tenant's camera's request (a ``RequestTemplate``, or a pod's template with
#: its ``headersFrom`` secrets).
RequestSource = Callable[..., RenderedRequest]


@dataclass(frozen=True)
class StreamPublish:
    """How every canary camera streams: protocol, URL template, H.264 settings."""

    protocol: str
    template: RequestTemplate
    keyframe_interval: float = 2.0
    bitrate: int = 1_000_000

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, where: str) -> StreamPublish:
        """From ``{protocol, url, headers?, keyframeInterval, bitrate}``; raises
        ``AdapterConfigError`` naming the field."""
        protocol = raw.get("protocol")
        if protocol not in PUBLISH_PROTOCOLS:
            raise AdapterConfigError(f"{where}.protocol", f"expected one of {', '.join(PUBLISH_PROTOCOLS)}")
        request = {"method": "POST", "url": raw.get("url"), "headers": raw.get("headers") or {}}
        template = RequestTemplate.from_mapping(request, where=where, schemes=_SCHEMES[protocol])
        return cls(
            protocol=protocol,
            template=template,
            keyframe_interval=float(raw.get("keyframeInterval", 2.0)),
            bitrate=int(raw.get("bitrate", 1_000_000)),
        )


async def publish_streams(
    fleet: CameraFleet,
    publish: StreamPublish,
    *,
    token: Callable[[str], str],
    render: RequestSource | None = None,
) -> None:
    """Stream every camera of ``fleet`` until cancelled; ``token(tenant)`` is the
    tenant's credential, ``render`` the template's renderer (default: its own)."""
    from canarywatch.camera.fleet import PushTarget
    from canarywatch.camera.video import StreamProtocol, VideoPublisher, VideoTarget

    render = render or publish.template.render
    requests = {
        (cam.tenant, cam.camera): render(tenant=cam.tenant, camera=str(cam.camera), token=token(cam.tenant))
        for cam in fleet.cameras
    }
    if publish.protocol == "mjpeg":
        targets = {key: PushTarget(r.method, r.url, dict(r.headers)) for key, r in requests.items()}
        await fleet.run_mjpeg_post(targets)
        return
    if publish.protocol == "whip":
        await _publish_whip(fleet, publish, requests)
        return
    protocol = StreamProtocol(publish.protocol)
    publishers = [
        VideoPublisher(
            cam,
            VideoTarget(
                requests[(cam.tenant, cam.camera)].url,
                protocol=protocol,
                keyframe_interval=publish.keyframe_interval,
                bitrate=publish.bitrate,
            ),
            fps=fleet.fps,
            clock=fleet.clock,
        )
        for cam in fleet.cameras
    ]
    try:
        await asyncio.gather(*(p.run() for p in publishers))
    finally:
        for publisher in publishers:
            publisher.stop()


async def _publish_whip(
    fleet: CameraFleet, publish: StreamPublish, requests: Mapping[tuple[str, int], RenderedRequest]
) -> None:
    from canarywatch.camera.whip import WhipPublisher, WhipTarget  # aiortc: whip cameras only
    from canarywatch.httpclient import client_session

    async with client_session() as session:
        publishers = [
            WhipPublisher(
                cam,
                WhipTarget(
                    r.url,
                    dict(r.headers),
                    keyframe_interval=publish.keyframe_interval,
                    bitrate=publish.bitrate,
                ),
                session=session,
                fps=fleet.fps,
                clock=fleet.clock,
            )
            for cam in fleet.cameras
            for r in [requests[(cam.tenant, cam.camera)]]
        ]
        await asyncio.gather(*(p.run() for p in publishers))
