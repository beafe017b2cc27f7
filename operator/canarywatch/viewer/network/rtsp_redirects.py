"""Spotting an RTSP redirect in what a server sends its client, before the client reads it.

FFmpeg's RTSP client follows a ``3xx`` reply's ``Location`` itself while it connects
(OPTIONS, DESCRIBE, SETUP): it opens a new connection to that URL, past the viewer's
relay (so past the relay's TLS verification), and sends it the first URL's credentials
when the new one has none. ``RedirectWatch`` reads the server-to-client byte stream as
FFmpeg frames it (``ff_rtsp_read_reply``): interleaved ``$`` packets skipped by their
length, a reply's lines ended by ``\\n`` (``\\r`` dropped), its body skipped by its
``Content-Length``; the status is the second word of a first line whose first word
starts with ``RTSP/``. A ``3xx`` status is reported as soon as its line is complete,
before the client could read the ``Location`` that follows it.

Pure logic (no I/O); a chunk costs one step per reply line and per interleaved packet,
not per byte of media.
"""

from __future__ import annotations

import re

__all__ = ["RedirectRefused", "RedirectWatch"]

# FFmpeg keeps the first 4095 bytes of a line and drops the rest.
_LINE_BYTES = 4095
_LINE_START = frozenset(b"$\r")
_LEADING_INT = re.compile(rb"\s*([+-]?\d+)")


class RedirectRefused(ConnectionRefusedError):
    """The server answered with a redirect: the connection was closed before the client
    read it (no URL in the message: it may carry the credentials)."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(
            f"the server redirected ({status}) to another location: refused, "
            "credentials never follow a redirect"
        )


class RedirectWatch:
    """Feed it the server's bytes in order; ``feed`` returns the redirect's status (3xx)
    when a reply's status line carries one, else None."""

    def __init__(self) -> None:
        self._skip = 0  # bytes of an interleaved packet or a body still to pass over
        self._packet_header: bytes | None = None  # the 3 bytes after ``$``, while incomplete
        self._line = b""
        self._first_line = True
        self._content_length = 0

    def feed(self, data: bytes) -> int | None:
        view = memoryview(data)
        at = 0
        while at < len(view):
            if self._skip:
                step = min(self._skip, len(view) - at)
                self._skip -= step
                at += step
            elif self._packet_header is not None:
                need = 3 - len(self._packet_header)
                self._packet_header += bytes(view[at : at + need])
                at += min(need, len(view) - at)
                if len(self._packet_header) == 3:
                    self._skip = int.from_bytes(self._packet_header[1:3], "big")
                    self._packet_header = None
            elif self._first_line and not self._line and view[at] in _LINE_START:
                # FFmpeg drops ``\r`` before it looks for ``$`` at the start of a reply
                self._packet_header = b"" if view[at] == ord("$") else None
                at += 1
            else:
                end = data.find(b"\n", at)
                piece = data[at : len(data) if end < 0 else end].replace(b"\r", b"")
                self._line = (self._line + piece)[:_LINE_BYTES]
                if end < 0:
                    return None
                at = end + 1
                status = self._end_line()
                if status is not None:
                    return status
        return None

    def _end_line(self) -> int | None:
        line, self._line = self._line, b""
        if self._first_line:
            self._first_line = False
            self._content_length = 0
            words = line.split(None, 2)
            if len(words) >= 2 and words[0].startswith(b"RTSP/"):
                match = _LEADING_INT.match(words[1])
                status = int(match.group(1)) if match else 0
                if 300 <= status < 400:
                    return status
            if not line:
                self._end_message()
            return None
        if not line:
            self._end_message()
            return None
        name, colon, value = line.partition(b":")
        if colon and name.lower() == b"content-length":
            match = _LEADING_INT.match(value)
            self._content_length = int(match.group(1)) if match else 0
        return None

    def _end_message(self) -> None:
        self._skip = max(0, self._content_length)
        self._first_line = True
        self._content_length = 0
