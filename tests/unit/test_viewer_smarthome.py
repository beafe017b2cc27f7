"""What the hub viewer says to a Google smart-home fulfillment or an Alexa camera skill
and reads back (pure), checked against the relay, which implements both protocols."""

from __future__ import annotations

import pytest

from canarywatch.relay.alexa import directive_token, handle_directive
from canarywatch.relay.smarthome import fulfill
from canarywatch.viewer.alexa import discover_directive, initialize_directive, read_discover, read_stream_uri
from canarywatch.viewer.smarthome import (
    HubProtocolError,
    get_camera_stream_request,
    read_stream_offer,
    read_sync,
    sync_request,
)


def relay_answer(body: object) -> object:
    return fulfill(
        body, tenant="acme-7", cameras=["0", "1"], stream_url=lambda c: f"https://r/s/{c}/master.m3u8"
    )


def test_sync_then_get_camera_stream_against_the_relays_fulfillment() -> None:
    devices = read_sync(relay_answer(sync_request()))
    assert [(d.id, d.protocols, d.needs_auth_token) for d in devices] == [
        ("0", ("hls",), False),
        ("1", ("hls",), False),
    ]
    offer = read_stream_offer(relay_answer(get_camera_stream_request("1", ["hls"])), "1")
    assert (offer.url, offer.protocol, offer.auth_token) == ("https://r/s/1/master.m3u8", "hls", None)


def test_request_ids_are_unique() -> None:
    assert sync_request()["requestId"] != sync_request()["requestId"]


def test_devices_without_the_camera_stream_trait_are_not_cameras() -> None:
    answer = {
        "payload": {
            "devices": [
                {"id": "lamp", "traits": ["action.devices.traits.OnOff"]},
                {"id": "cam", "traits": ["action.devices.traits.CameraStream"], "name": {"name": "Door"}},
            ]
        }
    }
    (camera,) = read_sync(answer)
    assert (camera.id, camera.name, camera.protocols) == ("cam", "Door", ())


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (
            {"payload": {"commands": [{"ids": ["1"], "status": "ERROR", "errorCode": "deviceNotFound"}]}},
            "deviceNotFound",
        ),
        (
            {"payload": {"commands": [{"ids": ["1"], "status": "SUCCESS", "states": {}}]}},
            "cameraStreamAccessUrl",
        ),
        (
            {
                "payload": {
                    "commands": [
                        {"ids": ["1"], "status": "SUCCESS", "states": {"cameraStreamAccessUrl": "file:///x"}}
                    ]
                }
            },
            "http(s)",
        ),
        ({"payload": {"commands": [{"ids": ["2"], "status": "SUCCESS"}]}}, "nothing about device '1'"),
        ({"payload": {"errorCode": "authFailure"}}, "authFailure"),
        ({"nope": 1}, "payload"),
    ],
)
def test_refusals_and_malformed_answers_say_why(answer: object, says: str) -> None:
    with pytest.raises(HubProtocolError) as caught:
        read_stream_offer(answer, "1")
    assert says in str(caught.value)


def test_an_auth_token_is_kept_when_the_fulfillment_gives_one() -> None:
    states = {
        "cameraStreamAccessUrl": "https://cdn/x.m3u8",
        "cameraStreamProtocol": "hls",
        "cameraStreamAuthToken": "tk",
    }
    offer = read_stream_offer(
        {"payload": {"commands": [{"ids": ["1"], "status": "SUCCESS", "states": states}]}}, "1"
    )
    assert offer.auth_token == "tk" and "tk" not in repr(offer) and "cdn" not in repr(offer)


def test_alexa_discover_then_initialize_against_the_relays_directives() -> None:
    def relay(body: object) -> object:
        return handle_directive(
            body,
            cameras=["0"],
            stream_uri=lambda c, rung: f"rtsp://r/{c}/{rung}",
            expires_at="2030-01-01T00:00:00.00Z",
        )

    (camera,) = read_discover(relay(discover_directive("tok")))
    assert camera.endpoint_id == "0" and (320, 180) in camera.resolutions
    low = read_stream_uri(relay(initialize_directive("tok", "0", (320, 180))))
    assert (low.url, low.protocol) == ("rtsp://r/0/low", "rtsp")
    with pytest.raises(HubProtocolError, match="NO_SUCH_ENDPOINT"):
        read_stream_uri(relay(initialize_directive("tok", "9", (320, 180))))
    assert directive_token(initialize_directive("tok", "0", (1, 1))) == "tok"
