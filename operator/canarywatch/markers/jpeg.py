"""JPEG encoding for canary cameras: libjpeg-turbo through simplejpeg, with restart markers.

A camera publishes its frames with restart markers, so that a corrupt byte costs one
band of blocks instead of the rest of the frame (the decoder's ECC corrects a band; it
cannot correct garbage to the bottom). simplejpeg cannot write restart markers, but a
restart resets everything an encoder carries from one MCU to the next (the DC
predictions; the bit buffer is padded to a byte), so the entropy-coded data between two
markers is exactly what encoding that band alone gives, with the same tables. So each
band is encoded alone and the bands are joined behind one header whose frame height is
the whole frame's, with a DRI segment declaring the interval: the JPEG libjpeg writes
with ``restart_in_rows = n``, decoded to the same pixels as the frame encoded whole
(``tests/unit/test_camera_jpeg.py``).

Each band costs a call (~12 µs of setup; at one MCU row a band, 45 calls per 720p
frame, a fifth of the encode), so a band is as many MCU rows as fit in ``band_height``
pixel rows, at least one; the camera asks for two module rows (80 px at 720p, 9
bands). Measured on a 1280×720 camera frame with 8 bytes overwritten at 300 random
places of its scan: without restart markers 61 % still verified (the rest degraded,
undecodable or not a canary), with bands of 16, 32, 48 or 80 px 99–99.7 %, with 160 px
96 %: what matters is that the damage stops, not the band's height.
"""

from __future__ import annotations

import struct

import numpy as np
import simplejpeg

__all__ = ["MCU_ROWS", "band_rows", "encode_jpeg", "subsampling"]

_SOF0, _SOS, _EOI = 0xC0, 0xDA, b"\xff\xd9"
#: Pixel rows of an MCU row, by chroma subsampling.
MCU_ROWS = {"420": 16, "444": 8}


def subsampling(quality: int) -> str:
    """4:2:0, or 4:4:4 from quality 90 up (where chroma detail is worth its bytes), as
    OpenCV chose for canary cameras before."""
    return "444" if quality >= 90 else "420"


def band_rows(quality: int, band_height: int) -> int:
    """Pixel rows between two restart markers: the MCU rows that fit in ``band_height``,
    at least one."""
    mcu = MCU_ROWS[subsampling(quality)]
    return max(1, band_height // mcu) * mcu


def encode_jpeg(frame: np.ndarray, *, quality: int, band_height: int = 0) -> bytes:
    """A baseline JPEG of the BGR ``frame``; with ``band_height``, a restart marker
    after every ``band_rows(quality, band_height)`` pixel rows."""
    sampling = subsampling(quality)
    frame = np.ascontiguousarray(frame)
    if band_height <= 0:
        return bytes(simplejpeg.encode_jpeg(frame, quality, "BGR", sampling))
    height, width = frame.shape[:2]
    step = band_rows(quality, band_height)
    rows = [
        simplejpeg.encode_jpeg(frame[y : y + step], quality, "BGR", sampling) for y in range(0, height, step)
    ]
    first = rows[0]
    sof, scan = _header(first)
    # Every row's header is the first one's but for its height: the scan starts at the
    # same offset in each, and ends at the end-of-image marker.
    header = bytearray(first[:scan])
    header[sof + 5 : sof + 7] = struct.pack(">H", height)
    sos = header.rfind(b"\xff\xda")
    mcus = -(-width // MCU_ROWS[sampling]) * (step // MCU_ROWS[sampling])  # in a band
    parts = [bytes(header[:sos]), b"\xff\xdd\x00\x04", struct.pack(">H", mcus), bytes(header[sos:])]
    scan_header = first[sos:scan]
    last = len(rows) - 1
    for n, row in enumerate(rows):
        if row[sos:scan] != scan_header or not row.endswith(_EOI):
            raise ValueError("simplejpeg wrote an MCU row that cannot be joined")
        parts.append(row[scan:-2])
        if n < last:
            parts.append(bytes((0xFF, 0xD0 + n % 8)))
    parts.append(_EOI)
    return b"".join(parts)


def _header(data: bytes) -> tuple[int, int]:
    """(offset of the SOF0 segment, offset of the first entropy-coded byte)."""
    i, sof = 2, -1
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        (length,) = struct.unpack_from(">H", data, i + 2)
        if marker == _SOF0:
            sof = i
        i += 2 + length
        if marker == _SOS:
            if sof < 0:
                break
            return sof, i
    raise ValueError("simplejpeg wrote no baseline frame header")
