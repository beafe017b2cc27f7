"""The relay's Alexa directives and RTP packetisation (pure)."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from canarywatch.relay import rtp
from canarywatch.relay.alexa import AlexaError, directive_token, handle_directive, rung_for


def initialize(endpoint: str, *streams: dict[str, Any]) -> dict[str, Any]:
    scope = {"type": "BearerToken", "token": "t"}
    header = {
        "namespace": "Alexa.CameraStreamController",
        "name": "InitializeCameraStreams",
        "correlationToken": "c",
    }
    return {
        "directive": {
            "header": header,
            "endpoint": {"scope": scope, "endpointId": endpoint},
            "payload": {"cameraStreams": list(streams)},
        }
    }


def answer(body: dict[str, Any]) -> dict[str, Any]:
    return handle_directive(
        body,
        cameras=["0"],
        stream_uri=lambda camera, rung: f"rtsp://r/{camera}/{rung}",
        expires_at="2030-01-01T00:00:00.00Z",
    )


def test_the_token_comes_from_the_directives_scope() -> None:
    assert directive_token(initialize("0")) == "t"
    discover = {"directive": {"header": {}, "payload": {"scope": {"type": "BearerToken", "token": "d"}}}}
    assert directive_token(discover) == "d"
    assert directive_token({"directive": {"header": {}}}) is None
    assert directive_token([]) is None


def test_initialize_camera_streams_answers_rtsp_by_resolution() -> None:
    event = answer(initialize("0", {"protocol": "RTSP", "resolution": {"width": 320, "height": 180}}))[
        "event"
    ]
    assert event["header"] == {
        **event["header"],
        "namespace": "Alexa.CameraStreamController",
        "name": "Response",
    }
    assert event["header"]["correlationToken"] == "c" and event["endpoint"] == {"endpointId": "0"}
    (stream,) = event["payload"]["cameraStreams"]
    assert stream["uri"] == "rtsp://r/0/low" and stream["resolution"] == {"width": 320, "height": 180}
    assert rung_for({"width": 1920}) == "high" and rung_for(None) == "high"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (initialize("7", {"protocol": "RTSP"}), "NO_SUCH_ENDPOINT"),
        (initialize("0", {"protocol": "HLS"}), "INVALID_VALUE"),
    ],
)
def test_refusals_are_error_responses(body: dict[str, Any], kind: str) -> None:
    event = answer(body)["event"]
    assert event["header"]["name"] == "ErrorResponse" and event["payload"]["type"] == kind


def test_malformed_directives_raise() -> None:
    with pytest.raises(AlexaError):
        answer({"nope": 1})
    with pytest.raises(AlexaError):
        answer(initialize("0"))


def test_a_large_nal_unit_is_cut_into_fu_a_fragments_and_reassembles() -> None:
    idr = bytes([0x65]) + bytes(range(256)) * 20  # 5121 bytes: four fragments
    sps = bytes([0x67, 0x42, 0xC0, 0x0D])
    access_unit = b"\x00\x00\x00\x01\x09\xf0" + b"\x00\x00\x00\x01" + sps + b"\x00\x00\x01" + idr
    packets = rtp.rtp_packets(access_unit, seq=65534, timestamp=90_000, ssrc=7)
    headers = [struct.unpack("!BBHII", p[:12]) for p in packets]
    assert [h[2] for h in headers] == [65534, 65535, 0, 1, 2]  # wraps at 16 bits
    assert [bool(h[1] & 0x80) for h in headers] == [
        False,
        False,
        False,
        False,
        True,
    ]  # marker: last of the AU
    assert packets[0][12:] == sps  # the delimiter is left out; a small unit travels whole
    fragments = [p[12:] for p in packets[1:]]
    assert all(f[0] & 0x1F == 28 and f[1] & 0x1F == 5 for f in fragments)
    assert fragments[0][1] & 0x80 and fragments[-1][1] & 0x40
    assert bytes([0x65]) + b"".join(f[2:] for f in fragments) == idr
    assert all(len(p) <= 12 + rtp.MAX_PAYLOAD for p in packets)
    assert rtp.interleaved(0, packets[0])[:4] == b"$\x00" + struct.pack("!H", len(packets[0]))
