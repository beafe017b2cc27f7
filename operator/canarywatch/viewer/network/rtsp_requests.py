"""Giving an RTSP server back its own URL in the requests a client sends through a relay.

A client reading through a loopback relay is pointed at the relay, so the Request-URI of
each request it sends names the relay (``rtsp://127.0.0.1:<relay port>/cam``), a port
that differs for every relay. The server reads that URI as the stream asked for:
GStreamer's RTSP server keys its shared media on the URI's port and path, so two
viewers of one camera through two relays got two pipelines of their own, each binding
the camera's one RTP source (only one of them fed: the other never prerolled, and its
viewer's FFmpeg timed out opening the stream); other servers check the URI's host or
build the ``Content-Base`` they answer with from it. ``RequestUriRewriter`` puts the URL
the client was asked to read back at the head of every Request-URI that names the relay.

It frames the client-to-server byte stream as an RTSP server does: interleaved ``$``
packets (RTCP receiver reports) passed by their length, a request's lines ended by
``\\n``, its body passed by its ``Content-Length``. Only the request line is changed,
and, given the client's credentials, a Digest ``Authorization`` whose ``uri`` names the
relay: the client hashed the relay's URL into it, and a server that checks the ``uri``
against the Request-URI would refuse it, so it is signed again for the server's URL
(``rtsp_digest``). Without credentials, or for a Digest it cannot sign, the header
passes as the client sent it.

Pure logic (no I/O): bytes of a request line or a header line not complete yet are held
until it is (bounded: a line longer than ``_LINE_BYTES`` passes as it is); media and
bodies pass at once.
"""

from __future__ import annotations

import re

from canarywatch.viewer.network.rtsp_digest import DigestCredentials, digest_uri, resigned

__all__ = ["RequestUriRewriter"]

# What a server keeps of a line (GStreamer: 4096 bytes); a longer one is no request line.
_LINE_BYTES = 4096
_PACKET_HEADER_BYTES = 4  # ``$``, the channel, the length (2 bytes)
_LEADING_INT = re.compile(rb"\s*([+-]?\d+)")


class RequestUriRewriter:
    """Feed it the client's bytes in order; ``feed`` returns the bytes to send the server,
    Request-URIs that start with ``relay`` (``rtsp://127.0.0.1:8554``) started with
    ``server`` instead (``rtsps://cams.example:322``)."""

    def __init__(self, *, relay: str, server: str, credentials: DigestCredentials | None = None) -> None:
        self._relay = relay.encode()
        self._server = server.encode()
        self._credentials = credentials
        self._method = b""
        self._held = b""  # the start of a line (or a packet header) not complete yet
        self._skip = 0  # bytes of an interleaved packet or a body still to pass
        self._first_line = True
        self._content_length = 0

    def feed(self, data: bytes) -> bytes:
        data, self._held = self._held + data, b""
        out = bytearray()
        at = 0
        while at < len(data):
            if self._skip:
                step = min(self._skip, len(data) - at)
                out += data[at : at + step]
                self._skip -= step
                at += step
            elif self._first_line and data[at] == ord("$"):
                if len(data) - at < _PACKET_HEADER_BYTES:
                    self._held = data[at:]
                    break
                self._skip = _PACKET_HEADER_BYTES + int.from_bytes(data[at + 2 : at + 4], "big")
            else:
                end = data.find(b"\n", at)
                if end < 0:
                    if len(data) - at < _LINE_BYTES:
                        self._held = data[at:]
                    else:  # no request line: passed on, and framing resumes after its end
                        out += data[at:]
                        self._first_line = False
                    break
                out += self._line(data[at : end + 1])
                at = end + 1
        return bytes(out)

    def _line(self, line: bytes) -> bytes:
        text = line.rstrip(b"\r\n")
        if self._first_line:
            if not text:
                return line  # blank lines between messages
            self._first_line = False
            self._content_length = 0
            self._method = line.partition(b" ")[0]
            return self._rewritten(line)
        if not text:  # the end of the headers: the body follows
            self._skip = max(0, self._content_length)
            self._first_line = True
            return line
        name, colon, value = text.partition(b":")
        if colon and name.strip().lower() == b"content-length":
            match = _LEADING_INT.match(value)
            self._content_length = int(match.group(1)) if match else 0
        elif colon and self._credentials is not None and name.strip().lower() == b"authorization":
            return self._resigned(line, name, value, self._credentials)
        return line

    def _resigned(self, line: bytes, name: bytes, value: bytes, credentials: DigestCredentials) -> bytes:
        """The header signed again for the server's URL, when its ``uri`` names the relay."""
        text = value.decode("latin-1")
        uri = digest_uri(text)
        server_uri = None if uri is None else self._on_server(uri.encode("latin-1"))
        if server_uri is None:
            return line
        signed = resigned(
            text,
            method=self._method.decode("latin-1"),
            uri=server_uri.decode("latin-1"),
            credentials=credentials,
        )
        if signed is None:
            return line
        return name + b":" + signed.encode("latin-1") + line[len(line.rstrip(b"\r\n")) :]

    def _rewritten(self, line: bytes) -> bytes:
        method, space, rest = line.partition(b" ")
        on_server = self._on_server(rest) if space else None
        return line if on_server is None else method + b" " + on_server

    def _on_server(self, uri: bytes) -> bytes | None:
        """``uri`` (and what follows it) starting with the server's URL instead of the
        relay's; None when it does not name the relay."""
        if not uri.startswith(self._relay):
            return None
        after = uri[len(self._relay) : len(self._relay) + 1]
        if after not in (b"", b"/", b"?", b" "):  # another port that starts with the same digits
            return None
        return self._server + uri[len(self._relay) :]
