"""An incremental, tolerant parser of ``multipart/x-mixed-replace`` bodies (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "MultipartParser",
    "MultipartPart",
    "OversizedPart",
    "boundary_from_content_type",
    "single_part",
]


@dataclass(frozen=True)
class MultipartPart:
    """One complete part; header names lower-cased."""

    headers: Mapping[str, str]
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class OversizedPart:
    """A part that exceeded the size cap and was discarded; ``size`` is the length it
    announced, or the length it had reached when it passed the cap (it is reported then,
    not when its end comes)."""

    headers: Mapping[str, str]
    size: int


_BOUNDARY_PARAM = re.compile(r"""boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))""", re.IGNORECASE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_JPEG_SOI = b"\xff\xd8"


def boundary_from_content_type(content_type: str) -> str | None:
    """The ``boundary`` parameter of a multipart Content-Type, quoted or not."""
    match = _BOUNDARY_PARAM.search(content_type)
    if match is None:
        return None
    return match.group(1) or match.group(2)


class MultipartParser:
    """Incremental, tolerant parser of ``multipart/x-mixed-replace`` bodies (pure).

    Cameras and relays get this format wrong in every possible way, so it accepts:
    parts with or without ``Content-Length`` (a wrong length is survived: the parser
    resynchronises on the next delimiter; a length over the cap is not waited for),
    CRLF or bare LF line ends, no newline before a delimiter, a declared boundary
    that already starts with ``--``, a missing boundary parameter (taken from the
    first ``--`` line), parts without any header block (a JPEG straight after the
    delimiter), and junk between parts.

    Memory is bounded by ``max_part_bytes``: a larger part is reported as an
    ``OversizedPart`` as soon as it is known to be one and discarded as it arrives.
    """

    def __init__(
        self, boundary: str | None, *, max_part_bytes: int, max_header_bytes: int = 8 * 1024
    ) -> None:
        self.max_part_bytes = max_part_bytes
        self.max_header_bytes = max_header_bytes
        self._delimiters: tuple[bytes, ...] = () if not boundary else _delimiters(boundary.encode("latin-1"))
        self._buffer = bytearray()
        self._state = "seek"  # seek → headers → body → seek ...
        self._headers: dict[str, str] = {}
        self._length: int | None = None
        self._skipped = 0  # bytes of the current part discarded for being over the cap
        self._reported = False  # the current part was reported as oversized already
        self._scan_from = 0
        #: the closing delimiter (``--boundary--``) was seen; nothing more will come.
        self.finished = False

    def feed(self, data: bytes) -> list[MultipartPart | OversizedPart]:
        """Parts completed by ``data``, in order."""
        if self.finished:
            return []
        self._buffer += data
        parts: list[MultipartPart | OversizedPart] = []
        while not self.finished and self._step(parts):
            pass
        return parts

    def _step(self, parts: list[MultipartPart | OversizedPart]) -> bool:
        """Advance one state; False when more data is needed."""
        if self._state == "seek":
            return self._seek()
        if self._state == "headers":
            return self._read_headers(parts)
        if self._length is not None:
            return self._read_sized_body(parts)
        return self._read_delimited_body(parts)

    def _seek(self) -> bool:
        if not self._delimiters and not self._sniff_boundary():
            return False
        found = self._find_delimiter(0)
        if found is None:
            # Preamble or junk: drop it, keeping what could be the start of a delimiter.
            keep = max(len(d) for d in self._delimiters) - 1
            del self._buffer[: max(0, len(self._buffer) - keep)]
            return False
        start, length = found
        del self._buffer[:start]
        after = self._buffer[length : length + 2]
        if len(after) < 2:
            return False
        if after == b"--":
            self.finished = True
            return False
        line_end = self._buffer.find(b"\n", length)
        if line_end < 0:
            if len(self._buffer) > self.max_header_bytes:  # not a delimiter line after all
                del self._buffer[:length]
                return True
            return False
        del self._buffer[: line_end + 1]
        self._state, self._headers, self._length = "headers", {}, None
        self._skipped, self._scan_from, self._reported = 0, 0, False
        return True

    def _sniff_boundary(self) -> bool:
        # No boundary declared: the first line starting with "--" is the delimiter.
        for raw_line in bytes(self._buffer).split(b"\n")[:-1]:  # complete lines only
            line = raw_line.strip()
            if line.startswith(b"--") and len(line) > 2:
                self._delimiters = (line,)
                return True
        if len(self._buffer) > self.max_header_bytes:
            del self._buffer[: -self.max_header_bytes]
        return False

    def _read_headers(self, parts: list[MultipartPart | OversizedPart]) -> bool:
        buffer = self._buffer
        if buffer.startswith((b"\r\n", b"\n")):
            del buffer[: 2 if buffer.startswith(b"\r\n") else 1]
            self._state = "body"
            return True
        if buffer.startswith(_JPEG_SOI):
            self._state = "body"  # no header block at all
            return True
        match = _HEADER_END.search(buffer, 0, self.max_header_bytes + 4)
        if match is None:
            if len(buffer) > self.max_header_bytes:
                self._state = "seek"  # not a header block: resynchronise on the next delimiter
                return True
            return False
        for raw_line in bytes(buffer[: match.start()]).split(b"\n"):
            name, colon, value = raw_line.decode("latin-1").partition(":")
            if colon:
                self._headers[name.strip().lower()] = value.strip()
        del buffer[: match.end()]
        self._length = _content_length(self._headers.get("content-length"))
        self._state = "body"
        if self._length is not None and self._length > self.max_part_bytes:
            # Reported at once, and not trusted to say where the part ends: one announcing
            # 99 TB would blind the stream for good. Its body is skipped up to the next
            # delimiter, like a part without a length.
            parts.append(OversizedPart(self._headers, self._length))
            self._reported = True
            self._length = None
        return True

    def _read_sized_body(self, parts: list[MultipartPart | OversizedPart]) -> bool:
        assert self._length is not None  # at most max_part_bytes (see _read_headers)
        if len(self._buffer) < self._length:
            return False
        parts.append(MultipartPart(self._headers, bytes(self._buffer[: self._length])))
        del self._buffer[: self._length]
        self._state = "seek"
        return True

    def _read_delimited_body(self, parts: list[MultipartPart | OversizedPart]) -> bool:
        found = self._find_delimiter(self._scan_from)
        if found is None:
            keep = max(len(d) for d in self._delimiters) + 1  # a delimiter and its CRLF may straddle reads
            if self._skipped or self._reported or len(self._buffer) > self.max_part_bytes:
                if not self._reported:
                    # Over the cap with no end in sight: reported now, not when (if ever)
                    # the next delimiter comes, with the size it has reached.
                    parts.append(OversizedPart(self._headers, self._skipped + len(self._buffer)))
                    self._reported = True
                discard = max(0, len(self._buffer) - keep)
                del self._buffer[:discard]
                self._skipped += discard
            self._scan_from = max(0, len(self._buffer) - keep)
            return False
        end, _ = found
        body = bytes(self._buffer[:end])
        # The line break before a delimiter belongs to the delimiter, not the body.
        if body.endswith(b"\r\n"):
            body = body[:-2]
        elif body.endswith(b"\n"):
            body = body[:-1]
        del self._buffer[:end]
        if len(body) > self.max_part_bytes and not self._reported:
            parts.append(OversizedPart(self._headers, len(body)))
        elif not self._reported:
            parts.append(MultipartPart(self._headers, body))
        self._state, self._skipped, self._reported = "seek", 0, False
        return True

    def _find_delimiter(self, start: int) -> tuple[int, int] | None:
        """(index, length) of the earliest delimiter at or after ``start``; at equal
        positions the longest wins, so ``----b`` is not mistaken for ``--b`` + junk."""
        best: tuple[int, int] | None = None
        for delimiter in self._delimiters:
            index = self._buffer.find(delimiter, start)
            if index >= 0 and (
                best is None or index < best[0] or (index == best[0] and len(delimiter) > best[1])
            ):
                best = (index, len(delimiter))
        return best


def _delimiters(boundary: bytes) -> tuple[bytes, ...]:
    # RFC 2046 delimiters are "--" + boundary. Many cameras declare the boundary with
    # the dashes already in it and then write it without adding more; accept both.
    if boundary.startswith(b"--"):
        return (b"--" + boundary, boundary)
    return (b"--" + boundary,)


def single_part(
    body: bytes, headers: Mapping[str, str], max_part_bytes: int
) -> MultipartPart | OversizedPart:
    part_headers = {"content-type": headers.get("Content-Type", "")}
    if len(body) > max_part_bytes:
        # The body was read only up to the cap; the announced length is the true size.
        return OversizedPart(part_headers, _content_length(headers.get("Content-Length")) or len(body))
    return MultipartPart(part_headers, body)


def _content_length(raw: str | None) -> int | None:
    if raw is None or not raw.strip().isdigit():
        return None  # absent or nonsense: fall back to scanning for the delimiter
    return int(raw.strip())
