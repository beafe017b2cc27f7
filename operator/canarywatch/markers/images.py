"""Turn untrusted bytes into a grayscale image without trusting them.

Every image the viewer receives may be hostile: empty, truncated, not an image,
a header that claims 60000×60000 pixels, a 50 MB body, or a 99 KB progressive JPEG of
thousands of scans (each one a pass over every block: tens of seconds of CPU). The
size and work checks happen on the header *before* any pixel buffer is allocated;
anything that fails becomes an `ImageRejected` with a reason, which the decoder turns
into an `undecodable` verdict.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "DCT_SCALE_FLAGS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_SCANS",
    "DEFAULT_MAX_SCAN_PIXELS",
    "ImageLimits",
    "ImageRejected",
    "Probe",
    "load_gray",
    "probe",
    "restart_prefix",
]

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_PIXELS = 4096 * 4096
# A progressive JPEG is decoded one scan at a time, each a pass over the whole image,
# so its cost is scans × pixels. Encoders write about 10 scans (libjpeg's default
# progression) and rarely more than 20; a frame may have 64 scans, and a large frame
# fewer: a 4096×4096 one 16.
DEFAULT_MAX_SCANS = 64
DEFAULT_MAX_SCAN_PIXELS = 16 * DEFAULT_MAX_PIXELS


class ImageRejected(Exception):
    """The bytes are not an image we are willing to decode; `str(e)` is the reason."""


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_side: int = 16384
    max_scans: int = DEFAULT_MAX_SCANS
    #: JPEG scans × pixels: the CPU one frame may cost.
    max_scan_pixels: int = DEFAULT_MAX_SCAN_PIXELS


@dataclass(frozen=True, slots=True)
class Probe:
    format: str
    width: int
    height: int
    #: JPEG start-of-scan markers (1 for a baseline frame); 1 for other formats.
    scans: int = 1


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise ImageRejected("corrupt JPEG: marker expected")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack_from(">H", data, i + 2)
        if length < 2:
            raise ImageRejected("corrupt JPEG: bad segment length")
        if marker in _SOF_MARKERS:
            if i + 9 > n:
                break
            height, width = struct.unpack_from(">HH", data, i + 5)
            return width, height
        if marker == 0xDA:  # scan data before any frame header
            raise ImageRejected("corrupt JPEG: scan before frame header")
        i += 2 + length
    raise ImageRejected("truncated JPEG: no frame header")


def restart_prefix(data: bytes, rows: int) -> tuple[bytes, int] | None:
    """A JPEG of only the top of `data` (at least `rows` pixel rows) and its height, or None.

    Possible when the scan has restart markers (DRI) that fall on an MCU-row boundary:
    the entropy-coded data is cut at that marker, the frame header's height lowered to
    match and an end-of-image marker appended, so libjpeg decodes only those rows,
    cleanly (no "premature end" warning). Canary cameras write a restart marker per MCU
    row for this (and so that a corrupted byte costs one row, not the rest of the frame).
    """
    sof = dri = sos = -1
    interval = 0
    i, n = 2, len(data)
    while i + 4 <= n and sos < 0:
        marker = data[i + 1]
        if data[i] != 0xFF:
            return None
        if marker == 0xFF:
            i += 1
            continue
        (length,) = struct.unpack_from(">H", data, i + 2)
        if marker in (0xC0, 0xC1):  # baseline/extended sequential: a single scan
            sof = i
        elif marker in _SOF_MARKERS:
            return None  # progressive, lossless, arithmetic: not one cuttable scan
        elif marker == 0xDD and length == 4 and i + 6 <= n:
            dri, (interval,) = i, struct.unpack_from(">H", data, i + 4)
        elif marker == 0xDA:
            sos = i
        i += 2 + length
    if sof < 0 or sos < 0 or dri < 0 or interval == 0 or sof + 10 > n:
        return None
    height, width, components = struct.unpack_from(">HHB", data, sof + 5)
    if data[sos + 4] != components or sof + 10 + 3 * components > n:
        return None  # not one interleaved scan of every component
    factors = [data[sof + 11 + 3 * c] for c in range(components)]
    if components == 1:
        mcu_w = mcu_h = 8  # a single-component scan is not interleaved: one block per MCU
    else:
        mcu_w, mcu_h = 8 * max(f >> 4 for f in factors), 8 * max(f & 15 for f in factors)
    per_row = -(-width // mcu_w)
    mcu_rows = -(-rows // mcu_h)
    while (mcu_rows * per_row) % interval:
        mcu_rows += 1
    if mcu_rows * mcu_h >= height:
        return None  # nothing to save
    # Restart markers cycle RST0..RST7; the one ending interval m is RST((m-1) % 8), and
    # is the ((m-1) // 8 + 1)-th occurrence of that marker (0xFF 0xDn never occurs
    # otherwise in entropy-coded data). One vectorised pass finds it (bytes.find stops
    # at every stuffed 0xFF and costs twice as much).
    last = mcu_rows * per_row // interval - 1
    raw = np.frombuffer(data, dtype=np.uint8)
    hits = np.flatnonzero(raw[i:] == 0xD0 + last % 8) + (i - 1)
    hits = hits[raw[hits] == 0xFF]
    if hits.size <= last // 8:
        return None
    cut = int(hits[last // 8])
    top = mcu_rows * mcu_h
    return b"".join(
        (data[: sof + 5], struct.pack(">H", top), memoryview(data)[sof + 7 : cut], b"\xff\xd9")
    ), top


def probe(data: bytes, limits: ImageLimits = ImageLimits()) -> Probe:
    """Identify the format and claimed size from the header; reject before decoding."""
    if not data:
        raise ImageRejected("empty body")
    scans = 1
    if len(data) > limits.max_bytes:
        raise ImageRejected(f"body of {len(data)} bytes exceeds the {limits.max_bytes}-byte cap")
    if data[:3] == b"\xff\xd8\xff":
        fmt = "jpeg"
        width, height = _jpeg_size(data)
        # libjpeg happily pads a truncated scan with gray; a missing EOI means truncation
        if not data.rstrip(b"\x00")[-2:] == b"\xff\xd9":
            raise ImageRejected("truncated JPEG: no end-of-image marker")
        # 0xFF 0xDA occurs only as a marker in entropy-coded data (0xFF is stuffed), so
        # this counts the scans, and any embedded thumbnail's: an upper bound.
        scans = data.count(b"\xff\xda")
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        fmt = "png"
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageRejected("corrupt PNG: no IHDR chunk")
        width, height = struct.unpack_from(">II", data, 16)
        if b"IEND" not in data[-16:]:
            raise ImageRejected("truncated PNG: no IEND chunk")
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        fmt = "gif"
        if len(data) < 10:
            raise ImageRejected("truncated GIF header")
        width, height = struct.unpack_from("<HH", data, 6)
    elif data[:2] == b"BM":
        fmt = "bmp"
        if len(data) < 26:
            raise ImageRejected("truncated BMP header")
        width, height = struct.unpack_from("<ii", data, 18)
        width, height = abs(width), abs(height)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        fmt = "webp"
        width, height = _webp_size(data)
    else:
        raise ImageRejected("not an image (unrecognised format)")
    if width <= 0 or height <= 0:
        raise ImageRejected(f"{fmt} header claims an empty {width}x{height} image")
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise ImageRejected(
            f"{fmt} header claims {width}x{height} pixels, above the cap of {limits.max_pixels} pixels"
        )
    if fmt != "jpeg":
        return Probe(fmt, width, height)
    if scans > limits.max_scans or scans * width * height > limits.max_scan_pixels:
        raise ImageRejected(
            f"JPEG of {scans} scans at {width}x{height}: above the decode budget "
            f"({limits.max_scans} scans, {limits.max_scan_pixels} scan-pixels)"
        )
    return Probe(fmt, width, height, scans)


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack_from("<HH", data, 26)
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        b = data[21:25]
        w = 1 + (((b[1] & 0x3F) << 8) | b[0])
        h = 1 + (((b[3] & 0xF) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        return w, h
    if chunk == b"VP8X" and len(data) >= 30:
        w = 1 + int.from_bytes(data[24:27], "little")
        h = 1 + int.from_bytes(data[27:30], "little")
        return w, h
    raise ImageRejected("corrupt WebP header")


#: cv2.imdecode flag for a grayscale decode at 1/scale (libjpeg's DCT scaling)
DCT_SCALE_FLAGS = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}


def load_gray(data: bytes, info: Probe, *, reduce: int = 1) -> np.ndarray:
    """Decode to 8-bit grayscale; JPEGs may be decoded at 1/2, 1/4 or 1/8 scale (DCT scaling)."""
    flag = DCT_SCALE_FLAGS[reduce] if info.format == "jpeg" else cv2.IMREAD_GRAYSCALE
    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
    except cv2.error as e:
        raise ImageRejected(f"corrupt {info.format}: decoder error") from e
    if img is None or img.size == 0:
        raise ImageRejected(f"corrupt or unsupported {info.format} data")
    if img.ndim != 2:  # 16-bit or alpha PNGs come back in other shapes
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY) if img.ndim == 3 and img.shape[2] == 4 else img
    if img.dtype != np.uint8:
        img = (img / 257).astype(np.uint8) if img.dtype == np.uint16 else img.astype(np.uint8)
    return np.ascontiguousarray(img)
