"""The relay's Google smart-home fulfillment (pure): SYNC lists the token's tenant's
cameras with the CameraStream trait; EXECUTE GetCameraStream answers each device with
its stream URL, or the protocol's error code for that device alone."""

from __future__ import annotations

from typing import Any

import pytest

from canarywatch.relay.ladder import listed_windows, master_playlist, media_playlist
from canarywatch.relay.smarthome import FulfillmentError, fulfill


def execute(
    *devices: str, command: str = "action.devices.commands.GetCameraStream", **params: Any
) -> dict[str, Any]:
    return {
        "requestId": "req-9",
        "inputs": [
            {
                "intent": "action.devices.EXECUTE",
                "payload": {
                    "commands": [
                        {
                            "devices": [{"id": d} for d in devices],
                            "execution": [{"command": command, "params": params}],
                        }
                    ]
                },
            }
        ],
    }


def answer(body: object) -> dict[str, Any]:
    return fulfill(
        body, tenant="acme-7", cameras=["0", "1"], stream_url=lambda camera: f"https://r/{camera}.m3u8"
    )


def test_sync_lists_the_tenants_cameras_as_camera_stream_devices() -> None:
    response = answer({"requestId": "r", "inputs": [{"intent": "action.devices.SYNC"}]})
    assert response["requestId"] == "r"
    payload = response["payload"]
    assert payload["agentUserId"] == "acme-7"
    assert [d["id"] for d in payload["devices"]] == ["0", "1"]
    for device in payload["devices"]:
        assert device["type"] == "action.devices.types.CAMERA"
        assert device["traits"] == ["action.devices.traits.CameraStream"]
        assert device["attributes"] == {
            "cameraStreamSupportedProtocols": ["hls"],
            "cameraStreamNeedAuthToken": False,
        }


def test_get_camera_stream_answers_per_device() -> None:
    commands = answer(execute("1", "7"))["payload"]["commands"]
    assert commands[0] == {
        "ids": ["1"],
        "status": "SUCCESS",
        "states": {
            "online": True,
            "cameraStreamAccessUrl": "https://r/1.m3u8",
            "cameraStreamProtocol": "hls",
        },
    }
    # another tenant's camera (or none) is not found, whatever its name
    assert commands[1] == {"ids": ["7"], "status": "ERROR", "errorCode": "deviceNotFound"}


def test_unsupported_protocols_and_commands_are_errors_of_that_device() -> None:
    (webrtc_only,) = answer(execute("0", SupportedStreamProtocols=["webrtc"]))["payload"]["commands"]
    assert webrtc_only["errorCode"] == "protocolNotSupported"
    (other,) = answer(execute("0", command="action.devices.commands.OnOff"))["payload"]["commands"]
    assert other["errorCode"] == "functionNotSupported"


def test_query_disconnect_and_unknown_intents() -> None:
    query = {
        "requestId": "q",
        "inputs": [{"intent": "action.devices.QUERY", "payload": {"devices": [{"id": "0"}, {"id": "x"}]}}],
    }
    devices = answer(query)["payload"]["devices"]
    assert devices["0"]["online"] is True and devices["x"]["errorCode"] == "deviceNotFound"
    assert answer({"requestId": "d", "inputs": [{"intent": "action.devices.DISCONNECT"}]}) == {}
    unknown = answer({"requestId": "u", "inputs": [{"intent": "action.devices.REBOOT"}]})
    assert unknown["payload"] == {"errorCode": "notSupported"}


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"inputs": []},
        {"requestId": "r"},
        {"requestId": "r", "inputs": [{"intent": "action.devices.EXECUTE"}]},
    ],
)
def test_malformed_requests_are_refused(body: object) -> None:
    with pytest.raises(FulfillmentError):
        answer(body)


def test_playlists_list_the_last_complete_windows() -> None:
    windows = listed_windows(first_frame_at=100.0, now=111.0, segment_seconds=2.0, count=3)
    assert list(windows) == [52, 53, 54]  # window 55 is still filling; 54 ended at 110 s
    assert list(listed_windows(first_frame_at=109.0, now=111.0, segment_seconds=2.0, count=3)) == [54]
    assert list(listed_windows(first_frame_at=110.5, now=111.0, segment_seconds=2.0, count=3)) == []
    media = media_playlist(windows, segment_seconds=2.0)
    assert "#EXT-X-MEDIA-SEQUENCE:52" in media and media.rstrip().endswith("54.ts")
    master = master_playlist()
    assert (
        master.index("BANDWIDTH=1500000") < master.index("high/index.m3u8") < master.index("low/index.m3u8")
    )
