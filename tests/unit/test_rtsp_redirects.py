"""``RedirectWatch``: a 3xx reply spotted in an RTSP server's byte stream as FFmpeg frames
it (replies, their bodies, interleaved ``$`` packets), however the bytes are chunked."""

from __future__ import annotations

import pytest

from canarywatch.viewer.network.rtsp_redirects import RedirectRefused, RedirectWatch

OPTIONS_OK = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: DESCRIBE\r\n\r\n"
REDIRECT = b"RTSP/1.0 302 Found\r\nCSeq: 2\r\nLocation: rtsp://other/acme/0\r\n\r\n"
# a body and an RTP packet that hold what would be a redirect as a reply: not one
SDP = b"v=0\r\nRTSP/1.0 302 Found\r\nLocation: rtsp://other/\r\n"
DESCRIBED = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: %d\r\n\r\n%s" % (len(SDP), SDP)
PACKET_PAYLOAD = b"\nRTSP/1.0 301 Moved\n\n" * 3
PACKET = b"$\x00" + len(PACKET_PAYLOAD).to_bytes(2, "big") + PACKET_PAYLOAD


def feed_bytewise(stream: bytes) -> list[tuple[int, int]]:
    """(offset, status) of every byte ``feed`` reported a redirect on, one byte at a time."""
    watch = RedirectWatch()
    return [(at, s) for at in range(len(stream)) if (s := watch.feed(stream[at : at + 1])) is not None]


@pytest.mark.parametrize("status", [300, 301, 302, 303, 305, 307, 399])
def test_a_redirect_is_reported_once_its_status_line_is_complete(status: int) -> None:
    reply = REDIRECT.replace(b"302", str(status).encode())
    assert RedirectWatch().feed(reply) == status
    line_end = reply.index(b"\n")
    assert feed_bytewise(reply) == [(line_end, status)]  # before the Location line


@pytest.mark.parametrize("status", [200, 204, 401, 403, 404, 454, 500])
def test_other_replies_are_not_redirects(status: int) -> None:
    assert RedirectWatch().feed(REDIRECT.replace(b"302 Found", b"%d X" % status)) is None


def test_bodies_and_interleaved_packets_are_skipped_not_read_as_replies() -> None:
    stream = OPTIONS_OK + DESCRIBED + PACKET + PACKET + b"RTSP/1.0 200 OK\r\nCSeq: 3\r\n\r\n" + PACKET
    assert RedirectWatch().feed(stream) is None
    assert feed_bytewise(stream) == []
    # the redirect after all that is still seen, in one chunk or byte by byte
    assert RedirectWatch().feed(stream + REDIRECT) == 302
    assert feed_bytewise(stream + REDIRECT) == [(len(stream) + REDIRECT.index(b"\n"), 302)]


@pytest.mark.parametrize(
    "reply",
    [
        b"RTSP/1.0 302 Found\nLocation: rtsp://other/\n\n",  # bare \n, as FFmpeg accepts
        b"\r\rRTSP/1.0 302 Found\r\n\r\n",  # \r dropped before the line
        b"  RTSP/1.0   302\r\n\r\n",  # words split on any blanks
        b"RTSP/2.0 302abc Found\r\n\r\n",  # the status read as atoi does
    ],
)
def test_redirects_in_the_forms_ffmpeg_reads(reply: bytes) -> None:
    assert RedirectWatch().feed(OPTIONS_OK + reply) == 302


def test_a_packet_after_carriage_returns_is_skipped_as_ffmpeg_does() -> None:
    assert RedirectWatch().feed(b"\r" + PACKET + REDIRECT) == 302
    assert RedirectWatch().feed(b"\r" + PACKET + OPTIONS_OK) is None


def test_a_first_word_that_is_not_rtsp_is_a_request_not_a_reply() -> None:
    assert RedirectWatch().feed(b"GET_PARAMETER 302 RTSP/1.0\r\nCSeq: 9\r\n\r\n" + OPTIONS_OK) is None


def test_a_long_line_is_cut_as_ffmpeg_cuts_it() -> None:
    watch = RedirectWatch()
    assert watch.feed(OPTIONS_OK.replace(b"Public:", b"X-Pad: " + b"x" * 100_000 + b"\r\nPublic:")) is None
    assert watch.feed(REDIRECT) == 302


def test_the_refusal_names_the_status_and_no_url() -> None:
    error = RedirectRefused(302)
    assert isinstance(error, ConnectionRefusedError) and error.status == 302
    assert str(error) == (
        "the server redirected (302) to another location: refused, credentials never follow a redirect"
    )
