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
from typing import NamedTuple

import numpy as np
import simplejpeg

from canarywatch.markers.orientation import AS_STORED, EXIF, exif_orientation

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
    "load_gray_top",
    "probe",
    "top_rows",
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
    #: JPEG scans: start-of-scan markers counted, or 1 for a single-scan frame (below);
    #: 1 for other formats.
    scans: int = 1
    #: For a JPEG that is one 8-bit baseline scan of every component: the height of its
    #: MCU rows and the offset of its frame header (see `top_rows`); 0 otherwise.
    mcu_height: int = 0
    frame_header: int = 0
    #: ... and for such a JPEG, the width of its MCUs, its restart interval (MCUs; 0: no
    #: restart markers) and the offset of its entropy-coded data (see `markers.restarts`).
    mcu_width: int = 0
    restart_interval: int = 0
    scan_data: int = 0
    #: A JPEG's EXIF orientation (``markers.orientation``): how a display turns the
    #: pixels `load_gray` gives as stored; 1 for other formats.
    orientation: int = AS_STORED


class _Header(NamedTuple):
    """What `probe` reads from a JPEG's segments up to its first scan."""

    width: int
    height: int
    mcu_height: int
    frame_header: int
    mcu_width: int
    restart_interval: int
    scan_data: int
    orientation: int
    #: the `Probe` of a single-scan JPEG (one scan whatever its bytes), made once per stream
    single_scan: Probe | None = None


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class _RecentHeaders:
    """The headers of the last few JPEG streams: a camera's frames share theirs byte for
    byte (same size, same tables), so the header walk runs once per stream, not per frame."""

    count = 8
    longest = 4096  # longer headers (metadata segments) are walked every time

    def __init__(self) -> None:
        # (header bytes, parsed): one tuple swapped in whole, read by decoding threads unlocked
        self.entries: tuple[tuple[bytes, _Header], ...] = ()

    def parse(self, data: bytes) -> _Header:
        for header, parsed in self.entries:
            if data.startswith(header):
                return parsed
        parsed, read = _walk_jpeg_header(data)
        if 0 < read <= self.longest:
            self.entries = ((data[:read], parsed), *self.entries[: self.count - 1])
        return parsed


def _walk_jpeg_header(data: bytes) -> tuple[_Header, int]:
    """The frame's size and layout from the segments up to the first scan, and how many
    leading bytes of ``data`` that depends on (0: more than those, do not remember it).
    The MCU geometry is 0 unless the JPEG is one 8-bit baseline scan of every component
    (and 0 when anything but segments follows the frame header: such a JPEG is neither
    cut nor spared the scan count)."""
    i, n = 2, len(data)
    sof = -1
    restart = 0
    orientation = 0  # 0: no EXIF segment met yet
    while i + 4 <= n:
        if data[i] != 0xFF:
            if sof >= 0:  # junk after the frame header (cameras pad): libjpeg skips it
                break
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
            if sof >= 0:
                break
            raise ImageRejected("corrupt JPEG: bad segment length")
        if marker in _SOF_MARKERS and sof < 0:
            if i + 9 > n:
                break
            sof = i
        elif marker == 0xDD and length == 4 and i + 6 <= n:
            (restart,) = struct.unpack_from(">H", data, i + 4)
        elif marker == 0xE1 and not orientation and data[i + 4 : i + 10] == EXIF:
            orientation = exif_orientation(data[i + 4 : i + 2 + length])
        elif marker == 0xDA:
            if sof < 0:
                raise ImageRejected("corrupt JPEG: scan before frame header")
            # what was read: up to the scan header's component count and the frame
            # header's components (wherever a malformed frame header says they are)
            end = max(i + 5, sof + 10 + 3 * data[sof + 9]) if sof + 9 < n else n + 1
            mcu_height, mcu_width = _single_scan_mcu(data, sof, i)
            scan_data = i + 2 + length if mcu_height and i + 2 + length <= n else 0
            width, height = _frame_size(data, sof)
            orientation = orientation or AS_STORED
            single = Probe(
                "jpeg", width, height, 1, mcu_height, sof, mcu_width, restart, scan_data, orientation
            )
            parts = (width, height, mcu_height, sof, mcu_width, restart, scan_data, orientation)
            header = _Header(*parts, single if mcu_height else None)
            return header, (end if end <= n else 0)
        i += 2 + length
    if sof < 0:
        raise ImageRejected("truncated JPEG: no frame header")
    return _Header(*_frame_size(data, sof), 0, sof, 0, 0, 0, orientation or AS_STORED), 0


def _frame_size(data: bytes, sof: int) -> tuple[int, int]:
    height, width = struct.unpack_from(">HH", data, sof + 5)
    return width, height


def _single_scan_mcu(data: bytes, sof: int, sos: int) -> tuple[int, int]:
    """The MCU height and width of a frame whose first scan is one 8-bit baseline scan of
    every component, else (0, 0). libjpeg decodes no other scan of such a frame (a second
    one is an error), so it costs one scan whatever else its bytes hold."""
    if data[sof + 1] not in (0xC0, 0xC1) or sos + 5 > len(data) or sof + 10 > len(data):
        return 0, 0  # progressive, lossless, arithmetic: scans are counted
    precision, components = data[sof + 4], data[sof + 9]
    if precision != 8 or data[sos + 4] != components or sof + 10 + 3 * components > len(data):
        return 0, 0  # 12-bit, or scans of some components each: counted
    if components == 1:  # a single-component scan is not interleaved: one block per MCU
        return 8, 8
    factors = [data[sof + 11 + 3 * c] for c in range(components)]
    # 0 when a sampling factor is 0: libjpeg refuses such a frame
    height, width = 8 * max(f & 15 for f in factors), 8 * max(f >> 4 for f in factors)
    return (height, width) if height and width else (0, 0)


_HEADERS = _RecentHeaders()


def top_rows(data: bytes, info: Probe, rows: int) -> tuple[bytes, int] | None:
    """``data`` with a frame header claiming only its top ``rows`` pixel rows (rounded up
    to whole MCU rows), and that height; None when the JPEG is not one 8-bit baseline
    scan of every component (``info.mcu_height``), or when there is nothing to save.

    libjpeg decodes as many MCU rows as the header claims, then skips the rest of the
    scan as data before the end-of-image marker (a byte scan for the next marker, no
    entropy decoding): a warning, not an error (`load_gray_top` decodes such a JPEG).
    Entropy decoding is sequential, so those rows are exactly the whole frame's top
    rows, with or without restart markers.
    """
    if info.mcu_height == 0:
        return None
    top = -(-rows // info.mcu_height) * info.mcu_height
    if top >= info.height:
        return None
    sof = info.frame_header
    return b"".join((data[: sof + 5], struct.pack(">H", top), memoryview(data)[sof + 7 :])), top


def probe(data: bytes, limits: ImageLimits = ImageLimits()) -> Probe:
    """Identify the format and claimed size from the header; reject before decoding."""
    if not data:
        raise ImageRejected("empty body")
    scans = 1
    if len(data) > limits.max_bytes:
        raise ImageRejected(f"body of {len(data)} bytes exceeds the {limits.max_bytes}-byte cap")
    if data[:3] == b"\xff\xd8\xff":
        fmt = "jpeg"
        header = _HEADERS.parse(data)
        width, height, mcu_height = header.width, header.height, header.mcu_height
        # libjpeg happily pads a truncated scan with gray; a missing EOI means truncation
        if not data.rstrip(b"\x00")[-2:] == b"\xff\xd9":
            raise ImageRejected("truncated JPEG: no end-of-image marker")
        # 0xFF 0xDA occurs only as a marker in entropy-coded data (0xFF is stuffed), so
        # this counts the scans, and any embedded thumbnail's: an upper bound.
        scans = 1 if mcu_height else data.count(b"\xff\xda")
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
    return header.single_scan or Probe(
        fmt, width, height, scans, 0, header.frame_header, orientation=header.orientation
    )


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


#: cv2.imdecode flag for a grayscale decode at 1/scale (libjpeg's DCT scaling): the values
#: of cv2.IMREAD_GRAYSCALE and IMREAD_REDUCED_GRAYSCALE_2/4/8, spelled out so that reading
#: a JPEG does not load OpenCV.
DCT_SCALE_FLAGS = {1: 0, 2: 16, 4: 32, 8: 64}


def load_gray(data: bytes, info: Probe, *, reduce: int = 1) -> np.ndarray:
    """Decode to 8-bit grayscale; JPEGs may be decoded at 1/2, 1/4 or 1/8 scale (DCT scaling).

    JPEGs go through libjpeg-turbo by simplejpeg (pixel for pixel what OpenCV's bundled
    libjpeg-turbo gives, a little faster, and without loading OpenCV's ~30 MiB); OpenCV
    decodes the other formats and the JPEGs simplejpeg refuses (CMYK, say). A JPEG's
    pixels come as stored, whichever library decodes them: its EXIF orientation
    (``info.orientation``) is applied by the callers that show the frame.
    """
    if info.format == "jpeg":
        gray = _simplejpeg_gray(data, info.width, reduce)
        if gray is not None:
            return gray
    import cv2  # the robust path and non-JPEG formats only: a viewer of JPEGs never loads it

    flag = (
        DCT_SCALE_FLAGS[reduce] | cv2.IMREAD_IGNORE_ORIENTATION
        if info.format == "jpeg"
        else cv2.IMREAD_GRAYSCALE
    )
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


def load_gray_top(data: bytes, info: Probe, *, reduce: int) -> np.ndarray | None:
    """Decode a `top_rows` JPEG (``info``: its size) to grayscale at 1/``reduce`` scale;
    None when libjpeg gives up on it.

    libjpeg-turbo through simplejpeg, which keeps libjpeg's warnings to itself (OpenCV
    prints them to stderr): the skipped rest of the scan is one, a corrupt byte in the
    top rows another. Neither matters here: only a MAC that verifies on these pixels
    concludes anything from them.
    """
    return _simplejpeg_gray(data, info.width, reduce)


def _simplejpeg_gray(data: bytes, width: int, reduce: int) -> np.ndarray | None:
    """``data`` (a JPEG ``width`` wide) in grayscale at 1/``reduce`` scale, libjpeg's
    warnings ignored; None when libjpeg gives up or scales otherwise."""
    scaled = -(-width // reduce)
    try:
        img = simplejpeg.decode_jpeg(
            data, colorspace="GRAY", min_width=scaled, min_height=1, min_factor=reduce, strict=False
        )
    except ValueError:
        return None
    if img.shape[1] != scaled:  # a scale libjpeg chose otherwise: not the grid we sample
        return None
    gray: np.ndarray = img.reshape(img.shape[:2])
    return gray
