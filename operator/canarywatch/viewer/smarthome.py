"""What a smart display says to a camera vendor's fulfillment, and reads back (pure).

Google smart-home cloud-to-cloud: ``action.devices.SYNC`` lists the linked user's
devices; a camera carries ``action.devices.traits.CameraStream``. ``action.devices.EXECUTE``
with ``action.devices.commands.GetCameraStream`` returns the stream to play:
``cameraStreamAccessUrl`` in ``cameraStreamProtocol`` (and ``cameraStreamAuthToken``
when the device said ``cameraStreamNeedAuthToken``). The hub viewer
(``transports.hub``) sends these with the tenant's OAuth bearer token and watches the
stream it is handed; everything here builds or reads one JSON document.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CAMERA_STREAM_TRAIT",
    "HubDevice",
    "HubProtocolError",
    "StreamOffer",
    "get_camera_stream_request",
    "read_stream_offer",
    "read_sync",
    "sync_request",
]

CAMERA_STREAM_TRAIT = "action.devices.traits.CameraStream"
GET_CAMERA_STREAM = "action.devices.commands.GetCameraStream"

_request_ids = itertools.count(1)


class HubProtocolError(ValueError):
    """The fulfillment's answer is not what the protocol promises (or says no)."""


@dataclass(frozen=True)
class HubDevice:
    """A camera the fulfillment listed for the linked user."""

    id: str
    name: str
    protocols: tuple[str, ...]
    needs_auth_token: bool


@dataclass(frozen=True)
class StreamOffer:
    """What ``GetCameraStream`` handed the hub."""

    url: str = field(repr=False)  # a capability URL: it is the credential
    protocol: str
    auth_token: str | None = field(default=None, repr=False)


def _request_id() -> str:
    return f"canarywatch-{next(_request_ids)}"


def sync_request() -> dict[str, Any]:
    return {"requestId": _request_id(), "inputs": [{"intent": "action.devices.SYNC"}]}


def get_camera_stream_request(device: str, protocols: Sequence[str]) -> dict[str, Any]:
    """``EXECUTE`` of ``GetCameraStream`` for one device, as a Cast-capable display asks."""
    execution = {
        "command": GET_CAMERA_STREAM,
        "params": {"StreamToChromecast": True, "SupportedStreamProtocols": list(protocols)},
    }
    return {
        "requestId": _request_id(),
        "inputs": [
            {
                "intent": "action.devices.EXECUTE",
                "payload": {"commands": [{"devices": [{"id": device}], "execution": [execution]}]},
            }
        ],
    }


def read_sync(document: object) -> list[HubDevice]:
    """The cameras of a ``SYNC`` answer (devices with the CameraStream trait)."""
    payload = _payload(document)
    devices = payload.get("devices")
    if not isinstance(devices, list):
        raise HubProtocolError("SYNC answer without payload.devices")
    cameras = []
    for device in devices:
        if not isinstance(device, Mapping) or CAMERA_STREAM_TRAIT not in (device.get("traits") or ()):
            continue
        device_id = device.get("id")
        if not isinstance(device_id, str):
            raise HubProtocolError("SYNC device without a string id")
        attributes = device.get("attributes") or {}
        protocols = attributes.get("cameraStreamSupportedProtocols") or ()
        name = device.get("name")
        name = name if isinstance(name, Mapping) else {}
        cameras.append(
            HubDevice(
                id=device_id,
                name=str(name.get("name", device_id)),
                protocols=tuple(str(p) for p in protocols),
                needs_auth_token=bool(attributes.get("cameraStreamNeedAuthToken", False)),
            )
        )
    return cameras


def read_stream_offer(document: object, device: str) -> StreamOffer:
    """The stream an ``EXECUTE`` answer gives ``device``; raises ``HubProtocolError``
    with the fulfillment's ``errorCode`` when it refused."""
    payload = _payload(document)
    commands = payload.get("commands")
    if not isinstance(commands, list):
        raise HubProtocolError(f"EXECUTE answer without payload.commands ({_error_code(payload)})")
    for command in commands:
        if not isinstance(command, Mapping) or device not in (command.get("ids") or ()):
            continue
        if command.get("status") != "SUCCESS":
            raise HubProtocolError(f"GetCameraStream {command.get('status')}: {_error_code(command)}")
        states = command.get("states")
        url = states.get("cameraStreamAccessUrl") if isinstance(states, Mapping) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise HubProtocolError("GetCameraStream answer without an http(s) cameraStreamAccessUrl")
        assert isinstance(states, Mapping)
        token = states.get("cameraStreamAuthToken")
        return StreamOffer(
            url=url,
            protocol=str(states.get("cameraStreamProtocol", "")),
            auth_token=token if isinstance(token, str) and token else None,
        )
    raise HubProtocolError(f"EXECUTE answer says nothing about device {device!r}")


def _payload(document: object) -> Mapping[str, Any]:
    payload = document.get("payload") if isinstance(document, Mapping) else None
    if not isinstance(payload, Mapping):
        raise HubProtocolError("answer without a payload object")
    return payload


def _error_code(obj: Mapping[str, Any]) -> str:
    return str(obj.get("errorCode", "no errorCode"))[:64]
