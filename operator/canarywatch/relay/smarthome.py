"""Google smart-home cloud-to-cloud fulfillment for the relay's cameras (pure).

A smart display reaches a camera through its vendor's fulfillment: ``SYNC`` lists the
user's devices (cameras carry ``action.devices.traits.CameraStream``), ``EXECUTE``
with ``action.devices.commands.GetCameraStream`` answers with the stream's URL. The
user is the OAuth bearer token's tenant; device ids are the tenant's camera names
(unique per user, as the protocol asks). ``QUERY`` and ``DISCONNECT`` are answered so
a real client's session works; anything else is ``notSupported``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "CAMERA_TRAIT",
    "CAMERA_TYPE",
    "GET_CAMERA_STREAM",
    "FulfillmentError",
    "fulfill",
]

CAMERA_TYPE = "action.devices.types.CAMERA"
CAMERA_TRAIT = "action.devices.traits.CameraStream"
GET_CAMERA_STREAM = "action.devices.commands.GetCameraStream"
SYNC, QUERY, EXECUTE, DISCONNECT = (
    f"action.devices.{intent}" for intent in ("SYNC", "QUERY", "EXECUTE", "DISCONNECT")
)
#: What the relay streams: its HLS ladder.
PROTOCOL = "hls"

#: camera -> the URL of its stream a hub should play (issued for the requesting tenant).
StreamUrl = Callable[[str], str]


class FulfillmentError(ValueError):
    """The request is not a fulfillment request (a 400)."""


def fulfill(body: object, *, tenant: str, cameras: Sequence[str], stream_url: StreamUrl) -> dict[str, Any]:
    """The response to one fulfillment request of ``tenant`` (whose ``cameras`` exist);
    ``stream_url(camera)`` issues the URL a ``GetCameraStream`` answer carries."""
    if not isinstance(body, Mapping):
        raise FulfillmentError("expected a JSON object with requestId and inputs")
    request_id = body.get("requestId")
    inputs = body.get("inputs")
    if not isinstance(request_id, str) or not isinstance(inputs, list) or len(inputs) != 1:
        raise FulfillmentError("expected requestId (string) and inputs (one intent)")
    intent = inputs[0].get("intent") if isinstance(inputs[0], Mapping) else None
    payload = inputs[0].get("payload", {}) if isinstance(inputs[0], Mapping) else {}
    if intent == SYNC:
        return {"requestId": request_id, "payload": _sync(tenant, cameras)}
    if intent == DISCONNECT:
        return {}
    if not isinstance(payload, Mapping):
        raise FulfillmentError("inputs[0].payload must be an object")
    if intent == QUERY:
        return {"requestId": request_id, "payload": _query(payload, cameras)}
    if intent == EXECUTE:
        return {"requestId": request_id, "payload": _execute(payload, cameras, stream_url)}
    return {"requestId": request_id, "payload": {"errorCode": "notSupported"}}


def _sync(tenant: str, cameras: Sequence[str]) -> dict[str, Any]:
    return {
        "agentUserId": tenant,
        "devices": [
            {
                "id": camera,
                "type": CAMERA_TYPE,
                "traits": [CAMERA_TRAIT],
                "name": {"name": f"Camera {camera}"},
                "willReportState": False,
                "attributes": {
                    "cameraStreamSupportedProtocols": [PROTOCOL],
                    "cameraStreamNeedAuthToken": False,
                },
            }
            for camera in cameras
        ],
    }


def _device_ids(devices: object) -> list[str]:
    if not isinstance(devices, list):
        raise FulfillmentError("devices must be a list of {id}")
    ids = [d.get("id") for d in devices if isinstance(d, Mapping)]
    if len(ids) != len(devices) or not all(isinstance(i, str) for i in ids):
        raise FulfillmentError("every device needs a string id")
    return [str(i) for i in ids]


def _query(payload: Mapping[str, Any], cameras: Sequence[str]) -> dict[str, Any]:
    states = {}
    for device in _device_ids(payload.get("devices")):
        if device in cameras:
            states[device] = {"online": True, "status": "SUCCESS"}
        else:
            states[device] = {"status": "ERROR", "errorCode": "deviceNotFound"}
    return {"devices": states}


def _execute(payload: Mapping[str, Any], cameras: Sequence[str], stream_url: StreamUrl) -> dict[str, Any]:
    commands = payload.get("commands")
    if not isinstance(commands, list):
        raise FulfillmentError("payload.commands must be a list")
    results: list[dict[str, Any]] = []
    for command in commands:
        if not isinstance(command, Mapping):
            raise FulfillmentError("each command must be an object with devices and execution")
        executions = command.get("execution")
        if not isinstance(executions, list):
            raise FulfillmentError("command.execution must be a list")
        for device in _device_ids(command.get("devices")):
            for execution in executions:
                results.append(_execute_one(device, execution, cameras, stream_url))
    return {"commands": results}


def _execute_one(
    device: str, execution: object, cameras: Sequence[str], stream_url: StreamUrl
) -> dict[str, Any]:
    if device not in cameras:
        return {"ids": [device], "status": "ERROR", "errorCode": "deviceNotFound"}
    if not isinstance(execution, Mapping) or execution.get("command") != GET_CAMERA_STREAM:
        return {"ids": [device], "status": "ERROR", "errorCode": "functionNotSupported"}
    params = execution.get("params") or {}
    wanted = params.get("SupportedStreamProtocols") if isinstance(params, Mapping) else None
    if isinstance(wanted, list) and PROTOCOL not in wanted:
        return {"ids": [device], "status": "ERROR", "errorCode": "protocolNotSupported"}
    return {
        "ids": [device],
        "status": "SUCCESS",
        "states": {
            "online": True,
            "cameraStreamAccessUrl": stream_url(device),
            "cameraStreamProtocol": PROTOCOL,
        },
    }
