"""Hostile and damaged frames: what an integration (or an attacker behind it) can send a
viewer, built from real encoders so tests and benchmarks use the same bytes.

- ``progressive_bomb``: a small progressive JPEG of a large image with hundreds of
  scans; libjpeg makes one pass over every block per scan, so a ~100 KB body costs
  seconds of CPU.
- ``truncated_jpeg``: a JPEG cut after a share of its bytes with an end-of-image marker
  appended (what a broken cache or a short read leaves); libjpeg pads the missing
  blocks with gray and only warns.
- ``top_rows``: a JPEG of only the top rows of a frame (a crop).
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

__all__ = ["jpeg_segments", "progressive_bomb", "top_rows", "truncated_jpeg"]

_SOI, _EOI, _SOS = b"\xff\xd8", b"\xff\xd9", 0xDA


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, bytes) of each segment after SOI; a scan includes its entropy-coded data."""
    out: list[tuple[int, bytes]] = []
    i, n = 2, len(data)
    while i + 4 <= n:
        marker = data[i + 1]
        if marker == 0xD9:
            break
        (length,) = struct.unpack_from(">H", data, i + 2)
        end = i + 2 + length
        if marker == _SOS:
            while True:  # entropy data runs to the next marker that is not RSTn or a stuffed 0xFF
                end = data.index(b"\xff", end)
                if data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                    end += 2
                    continue
                break
        out.append((marker, data[i:end]))
        i = end
    return out


def progressive_bomb(side: int = 4096, *, size: int = 99_000) -> bytes:
    """A progressive grayscale JPEG, ``side``² pixels, padded with repeated AC scans
    (each with its Huffman table) to about ``size`` bytes: a few bytes per full pass."""
    flat = np.full((side, side), 128, np.uint8)
    ok, buf = cv2.imencode(".jpg", flat, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 50])
    if not ok:
        raise RuntimeError("OpenCV could not encode a progressive JPEG")
    segments = jpeg_segments(buf.tobytes())
    first_scan = next(k for k, (marker, _) in enumerate(segments) if marker == _SOS)
    head = b"".join(seg for _, seg in segments[: first_scan + 1])  # tables, frame, DC scan
    table, ac_scan = segments[first_scan + 1][1], segments[first_scan + 2][1]
    repeat = max(1, (size - len(head) - 4) // (len(table) + len(ac_scan)))
    return _SOI + head + (table + ac_scan) * repeat + _EOI


def truncated_jpeg(data: bytes, share: float) -> bytes:
    """The first ``share`` of ``data`` with an end-of-image marker appended."""
    return data[: int(len(data) * share)] + _EOI


def top_rows(frame: np.ndarray, share: float, *, quality: int = 85) -> bytes:
    """A JPEG of the top ``share`` of ``frame``'s rows."""
    rows = max(1, int(frame.shape[0] * share))
    ok, buf = cv2.imencode(".jpg", frame[:rows], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode the crop")
    return bytes(buf.tobytes())
