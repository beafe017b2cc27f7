"""The WHIP/WHEP signaling helpers (``canarywatch.webrtc``): what an answer is, which
codec it chose, and where a session's DELETE may go (never to another origin: it
carries the tenant's token)."""

from __future__ import annotations

import pytest

from canarywatch.webrtc import looks_like_sdp, negotiated_codec, session_url

ANSWER = (
    "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 102 96\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n"
)


def test_the_codec_is_the_first_payload_type_of_the_video_section() -> None:
    assert negotiated_codec(ANSWER) == "H264"
    assert negotiated_codec(ANSWER, "audio") == "opus"
    # a section that never names its payload type, or no video at all
    assert (
        negotiated_codec("v=0\r\nm=video 9 RTP/AVP 100\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:100 VP8/90000\r\n")
        == ""
    )
    assert negotiated_codec("v=0\r\nm=audio 9 RTP/AVP 0\r\n") == ""


@pytest.mark.parametrize(
    ("body", "sdp"),
    [
        (ANSWER.encode(), True),
        (b"v=0\nm=video 9 RTP/AVP 96\n", True),
        (b'{"error": "nope"}', False),
        (b"", False),
    ],
)
def test_an_answer_is_sdp_by_its_version_line(body: bytes, sdp: bool) -> None:
    assert looks_like_sdp(body) is sdp


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/whep/session/42", "http://media:8889/whep/session/42"),
        ("session/42", "http://media:8889/acme/0/session/42"),
        ("http://media:8889/s/1", "http://media:8889/s/1"),
        ("http://elsewhere:8889/s/1", None),
        ("https://media:8889/s/1", None),
        (None, None),
        ("", None),
    ],
)
def test_a_session_is_deleted_on_the_endpoints_origin_only(
    location: str | None, expected: str | None
) -> None:
    assert session_url("http://media:8889/acme/0/whep", location) == expected
