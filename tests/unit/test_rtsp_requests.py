"""``RequestUriRewriter``: the Request-URIs a client sends a relay name the server's URL
again (the relay's own port would make a server see one stream per relay), and nothing
else changes, however the bytes are chunked."""

from __future__ import annotations

import hashlib

import pytest

from canarywatch.viewer.network.rtsp_digest import DigestCredentials
from canarywatch.viewer.network.rtsp_requests import RequestUriRewriter

RELAY = "rtsp://127.0.0.1:40123"
SERVER = "rtsps://cams.example:322"
DESCRIBE = (
    b"DESCRIBE rtsp://127.0.0.1:40123/acme/0 RTSP/1.0\r\nCSeq: 2\r\n"
    b'Authorization: Digest username="acme", uri="rtsp://127.0.0.1:40123/acme/0"\r\n\r\n'
)
# a body and an RTCP packet holding what would be a request line: passed as they are
BODY = b"DESCRIBE rtsp://127.0.0.1:40123/x RTSP/1.0\r\n"
SET_PARAMETER = b"SET_PARAMETER rtsp://127.0.0.1:40123/acme/0 RTSP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
RTCP_PAYLOAD = b"\nPLAY rtsp://127.0.0.1:40123/y RTSP/1.0\n" * 2
RTCP = b"$\x01" + len(RTCP_PAYLOAD).to_bytes(2, "big") + RTCP_PAYLOAD


def rewritten(stream: bytes, *, chunk: int | None = None) -> bytes:
    rewriter = RequestUriRewriter(relay=RELAY, server=SERVER)
    size = chunk or len(stream)
    return b"".join(rewriter.feed(stream[at : at + size]) for at in range(0, len(stream), size))


@pytest.mark.parametrize("chunk", [None, 1, 2, 3, 5, 7, 64])
def test_request_lines_name_the_server_and_nothing_else_changes_however_chunked(chunk: int | None) -> None:
    stream = DESCRIBE + RTCP + SET_PARAMETER + RTCP + b"PLAY rtsp://127.0.0.1:40123/acme/0/ RTSP/1.0\n\n"
    expected = (
        DESCRIBE.replace(b"DESCRIBE " + RELAY.encode(), b"DESCRIBE " + SERVER.encode())
        + RTCP
        + SET_PARAMETER.replace(b"SET_PARAMETER " + RELAY.encode(), b"SET_PARAMETER " + SERVER.encode(), 1)
        + RTCP
        + b"PLAY rtsps://cams.example:322/acme/0/ RTSP/1.0\n\n"
    )
    assert rewritten(stream, chunk=chunk) == expected
    # the Digest uri stays as the client hashed it; the body and the packets untouched
    assert b'uri="rtsp://127.0.0.1:40123/acme/0"' in expected
    assert BODY in expected and RTCP_PAYLOAD in expected


@pytest.mark.parametrize(
    "line",
    [
        b"OPTIONS * RTSP/1.0\r\n",
        b"SETUP rtsp://cams.example:322/acme/0/stream=0 RTSP/1.0\r\n",  # the server's own Content-Base
        b"PLAY rtsp://127.0.0.1:401234/acme/0 RTSP/1.0\r\n",  # another port, same first digits
        b"GET_PARAMETER rtsp://127.0.0.1:4012/acme/0 RTSP/1.0\r\n",
    ],
)
def test_other_request_uris_are_left_alone(line: bytes) -> None:
    request = line + b"CSeq: 3\r\n\r\n"
    assert rewritten(request) == request


def test_a_bare_relay_uri_names_the_bare_server() -> None:
    assert rewritten(b"OPTIONS rtsp://127.0.0.1:40123 RTSP/1.0\r\n\r\n") == (
        b"OPTIONS rtsps://cams.example:322 RTSP/1.0\r\n\r\n"
    )


def test_an_endless_line_is_passed_on_not_held() -> None:
    rewriter = RequestUriRewriter(relay=RELAY, server=SERVER)
    junk = b"x" * 5000
    assert rewriter.feed(junk) == junk
    # framing resumes after it: the next request is rewritten
    out = rewriter.feed(b"\r\nCSeq: 1\r\n\r\n" + DESCRIBE)
    assert out == b"\r\nCSeq: 1\r\n\r\n" + rewritten(DESCRIBE)


def test_a_digest_signed_for_the_relay_is_signed_again_for_the_server_however_chunked() -> None:
    """The client hashed the relay's URL into its Digest; a server that checks ``uri``
    against the Request-URI gets its own URL in both, and a response computed over it."""
    credentials = DigestCredentials("acme", "t-acme")
    header = (
        'Authorization: Digest username="acme", realm="cams", nonce="n0", '
        'uri="rtsp://127.0.0.1:40123/acme/0", response="{response}"\r\n'
    )
    relayed = (
        b"DESCRIBE rtsp://127.0.0.1:40123/acme/0 RTSP/1.0\r\nCSeq: 3\r\n"
        + header.format(response="0" * 32).encode()
        + b"\r\n"
    )
    ha1 = hashlib.md5(b"acme:cams:t-acme").hexdigest()
    ha2 = hashlib.md5(b"DESCRIBE:rtsps://cams.example:322/acme/0").hexdigest()
    expected = (
        b"DESCRIBE rtsps://cams.example:322/acme/0 RTSP/1.0\r\nCSeq: 3\r\n"
        + header.replace("rtsp://127.0.0.1:40123", SERVER)
        .format(response=hashlib.md5(f"{ha1}:n0:{ha2}".encode()).hexdigest())
        .encode()
        + b"\r\n"
    )
    for chunk in (1, 7, len(relayed)):
        rewriter = RequestUriRewriter(relay=RELAY, server=SERVER, credentials=credentials)
        out = b"".join(rewriter.feed(relayed[at : at + chunk]) for at in range(0, len(relayed), chunk))
        assert out == expected, chunk
    # without credentials (or for a uri naming something else) the header is left as it is
    assert rewritten(relayed) == expected.replace(
        b'uri="rtsps://cams.example:322', b'uri="' + RELAY.encode()
    ).replace(hashlib.md5(f"{ha1}:n0:{ha2}".encode()).hexdigest().encode(), b"0" * 32)
    other = relayed.replace(b'uri="rtsp://127.0.0.1:40123', b'uri="rtsp://127.0.0.1:4012')
    rewriter = RequestUriRewriter(relay=RELAY, server=SERVER, credentials=credentials)
    assert b'uri="rtsp://127.0.0.1:4012/acme/0", response="' + b"0" * 32 in rewriter.feed(other)
