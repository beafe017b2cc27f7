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

Each band costs a call (~12-30 µs of setup), so a band may be several MCU rows
(``band_height``): measured on a 1280×720 camera frame with 8 bytes overwritten at 300
random places of its scan, without restart markers 61 % still verified (the rest
degraded, undecodable or not a canary), with bands of 16, 32, 48 or 80 px 99–99.7 %,
with 160 px 96 %. Cameras still restart every MCU row, as OpenCV wrote them: the
viewers' reduced read cuts out the MCU rows it samples at their markers
(``markers.restarts``), which a band of several rows would defeat. Since each band is
coded alone, a band with the pixels of the band before reuses its coded bytes: a
module row spans several MCU rows of one colour pattern (29 calls at 720p, not 45).
"""

from __future__ import annotations

import struct
from collections.abc import Container

import numpy as np
import simplejpeg

__all__ = ["MCU_ROWS", "band_rows", "encode_jpeg", "subsampling"]

_SOF0, _SOS, _EOI = 0xC0, 0xDA, b"\xff\xd9"
_RST = tuple(bytes((0xFF, 0xD0 + k)) for k in range(8))
_HEADER = -1  # ``kept``'s key of the joined header
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


def encode_jpeg(
    frame: np.ndarray,
    *,
    quality: int,
    band_height: int = 0,
    kept: dict[int, bytes] | None = None,
    constant: Container[int] = (),
) -> bytes:
    """A baseline JPEG of the BGR ``frame``; with ``band_height``, a restart marker
    after every ``band_rows(quality, band_height)`` pixel rows.

    ``constant``: the bands (by index) whose pixels are the same in every frame encoded
    with ``kept``, which keeps their entropy-coded data (and the header) from the first
    frame for the next ones: a camera's fixed border rows are encoded once."""
    sampling = subsampling(quality)
    frame = np.ascontiguousarray(frame)
    if band_height <= 0:
        return bytes(simplejpeg.encode_jpeg(frame, quality, "BGR", sampling))
    height, width = frame.shape[:2]
    step = band_rows(quality, band_height)
    kept = {} if kept is None else kept
    header = kept.get(_HEADER)
    bands: list[bytes] = []
    for n, y in enumerate(range(0, height, step)):
        data = kept.get(n) if n in constant else None
        if data is None and n and _same_pixels(frame, y - step, y, step):
            # A band is coded alone (the restart marker before it resets the DC
            # predictions), so the same pixels give the same bytes: a module row spans
            # several MCU rows of one colour pattern, encoded once.
            data = bands[-1]
        if data is None:
            encoded = simplejpeg.encode_jpeg(frame[y : y + step], quality, "BGR", sampling)
            if header is None:
                header = kept[_HEADER] = _joined_header(encoded, height, width, step, sampling)
            scan = len(header) - 6  # the header less the DRI segment
            if encoded[scan - 14 : scan] != header[-14:] or not encoded.endswith(_EOI):
                raise ValueError("simplejpeg wrote a band that cannot be joined")
            data = encoded[scan:-2]
            if n in constant:
                kept[n] = data
        bands.append(data)
    if header is None:
        raise ValueError(f"cannot encode a frame of shape {frame.shape}")
    parts = [header]
    for n, data in enumerate(bands):
        if n:
            parts.append(_RST[(n - 1) % 8])
        parts.append(data)
    parts.append(_EOI)
    return b"".join(parts)


def _same_pixels(frame: np.ndarray, a: int, b: int, rows: int) -> bool:
    """Whether ``rows`` pixel rows from ``a`` and from ``b`` are the same (first rows
    first: most bands differ there; a copy and a memcmp is cheaper than numpy's compare)."""
    if b + rows > frame.shape[0] or frame[a].tobytes() != frame[b].tobytes():
        return False
    return bool(frame[a : a + rows].tobytes() == frame[b : b + rows].tobytes())


def _joined_header(band: bytes, height: int, width: int, step: int, sampling: str) -> bytes:
    """``band``'s header claiming ``height`` rows, with a DRI segment: one restart
    interval a band of ``step`` rows. Every band's header is the same but for its
    height, so the scan starts at the same offset in each."""
    sof, scan = _header(band)
    header = bytearray(band[:scan])
    header[sof + 5 : sof + 7] = struct.pack(">H", height)
    sos = header.rfind(b"\xff\xda")
    mcus = -(-width // MCU_ROWS[sampling]) * (step // MCU_ROWS[sampling])  # in a band
    return bytes(header[:sos]) + b"\xff\xdd\x00\x04" + struct.pack(">H", mcus) + bytes(header[sos:])


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
