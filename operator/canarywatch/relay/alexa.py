"""Alexa smart-home directives for the relay's cameras (pure).

An Alexa display finds cameras with ``Alexa.Discovery`` / ``Discover`` (endpoints with
the ``Alexa.CameraStreamController`` interface and their stream configurations) and
asks ``Alexa.CameraStreamController`` / ``InitializeCameraStreams`` for a stream: the
answer's ``cameraStreams[].uri`` is an RTSP URI (the relay's RTSP server, a stream
grant in its path). The user is the tenant whose OAuth token the directive carries in
its ``scope``; endpoint ids are the tenant's camera names.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["AlexaError", "directive_token", "handle_directive", "rung_for"]

CAMERA_STREAM_CONTROLLER = "Alexa.CameraStreamController"
#: What the relay's RTSP server offers: the ladder's rungs as resolutions.
RESOLUTIONS = ({"width": 1280, "height": 720}, {"width": 320, "height": 180})
_LOW_WIDTH = 640

#: (camera, rung) -> the RTSP URI a display should open (issued for the directive's tenant).
StreamUri = Callable[[str, str], str]


class AlexaError(ValueError):
    """Not a directive the relay understands (a 400)."""


def directive_token(body: object) -> str | None:
    """The OAuth bearer token of a directive (``endpoint.scope`` or ``payload.scope``)."""
    directive = body.get("directive") if isinstance(body, Mapping) else None
    if not isinstance(directive, Mapping):
        return None
    for holder in (directive.get("endpoint"), directive.get("payload")):
        scope = holder.get("scope") if isinstance(holder, Mapping) else None
        if isinstance(scope, Mapping) and scope.get("type") == "BearerToken":
            token = scope.get("token")
            return token if isinstance(token, str) and token else None
    return None


def rung_for(resolution: object) -> str:
    """The ladder rung of a requested resolution: ``low`` up to 640 pixels wide."""
    width = resolution.get("width") if isinstance(resolution, Mapping) else None
    return "low" if isinstance(width, int) and width <= _LOW_WIDTH else "high"


def handle_directive(
    body: object, *, cameras: Sequence[str], stream_uri: StreamUri, expires_at: str
) -> dict[str, Any]:
    """The event answering one directive of a (known) tenant whose ``cameras`` exist."""
    directive = body.get("directive") if isinstance(body, Mapping) else None
    header = directive.get("header") if isinstance(directive, Mapping) else None
    if not isinstance(directive, Mapping) or not isinstance(header, Mapping):
        raise AlexaError("expected {directive: {header, endpoint?, payload}}")
    namespace, name = header.get("namespace"), header.get("name")
    if (namespace, name) == ("Alexa.Discovery", "Discover"):
        return _event("Alexa.Discovery", "Discover.Response", header, {"endpoints": _endpoints(cameras)})
    endpoint = directive.get("endpoint")
    endpoint_id = endpoint.get("endpointId") if isinstance(endpoint, Mapping) else None
    if (namespace, name) != (CAMERA_STREAM_CONTROLLER, "InitializeCameraStreams"):
        return _error(header, endpoint_id, "INVALID_DIRECTIVE", f"{namespace}.{name} is not supported")
    if endpoint_id not in cameras:
        return _error(header, endpoint_id, "NO_SUCH_ENDPOINT", f"no camera {endpoint_id!r}")
    assert isinstance(endpoint_id, str)
    payload = directive.get("payload")
    requested = payload.get("cameraStreams") if isinstance(payload, Mapping) else None
    if not isinstance(requested, list) or not requested:
        raise AlexaError("InitializeCameraStreams needs payload.cameraStreams")
    rtsp = [s for s in requested if isinstance(s, Mapping) and s.get("protocol") == "RTSP"]
    if not rtsp:
        return _error(header, endpoint_id, "INVALID_VALUE", "only RTSP streams are offered")
    streams = []
    for wanted in rtsp:
        rung = rung_for(wanted.get("resolution"))
        streams.append(
            {
                "uri": stream_uri(endpoint_id, rung),
                "expirationTime": expires_at,
                "idleTimeoutSeconds": 30,
                "protocol": "RTSP",
                "resolution": RESOLUTIONS[0] if rung == "high" else RESOLUTIONS[1],
                "authorizationType": "NONE",
                "videoCodec": "H264",
                "audioCodec": "NONE",
            }
        )
    event = _event(CAMERA_STREAM_CONTROLLER, "Response", header, {"cameraStreams": streams})
    event["event"]["endpoint"] = {"endpointId": endpoint_id}
    return event


def _endpoints(cameras: Sequence[str]) -> list[dict[str, Any]]:
    configuration = {
        "protocols": ["RTSP"],
        "resolutions": list(RESOLUTIONS),
        "authorizationTypes": ["NONE"],
        "videoCodecs": ["H264"],
        "audioCodecs": ["NONE"],
    }
    return [
        {
            "endpointId": camera,
            "manufacturerName": "canarywatch reference relay",
            "friendlyName": f"Camera {camera}",
            "description": "canary camera",
            "displayCategories": ["CAMERA"],
            "capabilities": [
                {
                    "type": "AlexaInterface",
                    "interface": CAMERA_STREAM_CONTROLLER,
                    "version": "3",
                    "cameraStreamConfigurations": [configuration],
                },
                {"type": "AlexaInterface", "interface": "Alexa", "version": "3"},
            ],
        }
        for camera in cameras
    ]


def _event(namespace: str, name: str, header: Mapping[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    out_header = {"namespace": namespace, "name": name, "payloadVersion": "3", "messageId": str(uuid.uuid4())}
    if isinstance(header.get("correlationToken"), str):
        out_header["correlationToken"] = header["correlationToken"]
    return {"event": {"header": out_header, "payload": payload}}


def _error(header: Mapping[str, Any], endpoint_id: object, kind: str, message: str) -> dict[str, Any]:
    event = _event("Alexa", "ErrorResponse", header, {"type": kind, "message": message})
    if isinstance(endpoint_id, str):
        event["event"]["endpoint"] = {"endpointId": endpoint_id}
    return event
