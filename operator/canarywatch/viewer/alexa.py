"""What an Alexa display says to a camera skill's endpoint, and reads back (pure).

``Alexa.Discovery`` / ``Discover`` lists the linked user's endpoints; a camera has the
``Alexa.CameraStreamController`` interface and its ``cameraStreamConfigurations``.
``Alexa.CameraStreamController`` / ``InitializeCameraStreams`` asks for an RTSP stream
at a resolution and is answered with ``cameraStreams[].uri``. The user's OAuth token
travels in the directive's ``scope``, as Alexa sends it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canarywatch.viewer.smarthome import HubProtocolError, StreamOffer

__all__ = ["AlexaCamera", "discover_directive", "initialize_directive", "read_discover", "read_stream_uri"]

CONTROLLER = "Alexa.CameraStreamController"


@dataclass(frozen=True)
class AlexaCamera:
    endpoint_id: str
    #: (width, height) the camera offers over RTSP, as advertised.
    resolutions: tuple[tuple[int, int], ...]


def _header(namespace: str, name: str) -> dict[str, str]:
    token = str(uuid.uuid4())
    return {
        "namespace": namespace,
        "name": name,
        "payloadVersion": "3",
        "messageId": token,
        "correlationToken": token,
    }


def discover_directive(token: str) -> dict[str, Any]:
    scope = {"type": "BearerToken", "token": token}
    return {"directive": {"header": _header("Alexa.Discovery", "Discover"), "payload": {"scope": scope}}}


def initialize_directive(token: str, endpoint_id: str, resolution: tuple[int, int]) -> dict[str, Any]:
    stream = {
        "protocol": "RTSP",
        "resolution": {"width": resolution[0], "height": resolution[1]},
        "authorizationType": "NONE",
        "videoCodec": "H264",
        "audioCodec": "NONE",
    }
    return {
        "directive": {
            "header": _header(CONTROLLER, "InitializeCameraStreams"),
            "endpoint": {"scope": {"type": "BearerToken", "token": token}, "endpointId": endpoint_id},
            "payload": {"cameraStreams": [stream]},
        }
    }


def read_discover(document: object) -> list[AlexaCamera]:
    """The RTSP cameras of a ``Discover.Response``."""
    payload = _event(document).get("payload")
    endpoints = payload.get("endpoints") if isinstance(payload, Mapping) else None
    if not isinstance(endpoints, list):
        raise HubProtocolError("Discover answer without payload.endpoints")
    cameras = []
    for endpoint in endpoints:
        if not isinstance(endpoint, Mapping) or not isinstance(endpoint.get("endpointId"), str):
            continue
        for capability in endpoint.get("capabilities") or ():
            if not isinstance(capability, Mapping) or capability.get("interface") != CONTROLLER:
                continue
            resolutions = [
                (int(r["width"]), int(r["height"]))
                for config in capability.get("cameraStreamConfigurations") or ()
                if isinstance(config, Mapping) and "RTSP" in (config.get("protocols") or ())
                for r in config.get("resolutions") or ()
                if isinstance(r, Mapping)
                and isinstance(r.get("width"), int)
                and isinstance(r.get("height"), int)
            ]
            cameras.append(AlexaCamera(endpoint["endpointId"], tuple(resolutions)))
    return cameras


def read_stream_uri(document: object) -> StreamOffer:
    """The RTSP stream of an ``InitializeCameraStreams`` answer; raises
    ``HubProtocolError`` with the ``ErrorResponse`` type when it refused."""
    event = _event(document)
    header = event.get("header") if isinstance(event.get("header"), Mapping) else {}
    payload = event.get("payload") if isinstance(event.get("payload"), Mapping) else {}
    assert isinstance(header, Mapping) and isinstance(payload, Mapping)
    if header.get("name") == "ErrorResponse":
        raise HubProtocolError(f"InitializeCameraStreams refused: {str(payload.get('type'))[:64]}")
    streams = payload.get("cameraStreams")
    uri = (
        streams[0].get("uri")
        if isinstance(streams, list) and streams and isinstance(streams[0], Mapping)
        else None
    )
    if not isinstance(uri, str) or not uri.startswith(("rtsp://", "rtsps://")):
        raise HubProtocolError("InitializeCameraStreams answer without an rtsp(s) uri")
    return StreamOffer(url=uri, protocol="rtsp")


def _event(document: object) -> Mapping[str, Any]:
    event = document.get("event") if isinstance(document, Mapping) else None
    if not isinstance(event, Mapping):
        raise HubProtocolError("answer without an event object")
    return event
