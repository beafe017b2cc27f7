"""The reduced-scale read: the signed message at the least decoding cost.

Nearly every frame a viewer receives is a clean canary, and for those the verdict can
cost less than decoding the frame: the JPEG header says how big a module is, libjpeg's
DCT scaling decodes at 1/2–1/8 scale with a module still >= 5 px, and of a baseline JPEG
only the rows holding the signed message are entropy-decoded (`images.top_rows`). One
sample at each module centre, Otsu's threshold: what comes out is a message only the
MAC can accept (`Decoder` checks it). Whatever does not verify is decoded again at full
resolution, so nothing but a verified canary is ever concluded from these reads.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, cast

import cv2
import numpy as np

from canarywatch.markers import ecc
from canarywatch.markers.images import Probe, load_gray, load_gray_top, top_rows
from canarywatch.markers.layout import COLS, LAYOUT, ROWS
from canarywatch.markers.payload import PAYLOAD_BYTES

__all__ = ["message_rows", "read_scaled", "reduced_scale", "reduction"]

_CODE_BITS = ecc.CODEWORD_BYTES * 8
_WHITENING_BYTES = np.packbits(LAYOUT.whitening[:_CODE_BITS])
# The signed message's modules sit in module rows 0..10 (codeword bytes are laid out
# top to bottom, message first): decoding those rows is enough to verify a clean frame.
_MESSAGE_BITS = PAYLOAD_BYTES * 8
_MESSAGE_MODULE_ROWS = int(LAYOUT.data_rows[:_MESSAGE_BITS].max()) + 1
_MESSAGE_WHITENING = int.from_bytes(_WHITENING_BYTES[:PAYLOAD_BYTES].tobytes(), "big")


def reduced_scale(info: Probe) -> int:
    """The DCT scale (1, 2, 4 or 8) of the reduced read, from the header: modules stay >= 5 px."""
    return reduction(info, min_width=COLS * 5)


def reduction(info: Probe, *, min_width: int) -> int:
    """The largest DCT scale at which a JPEG stays `min_width` wide (and as tall, in
    proportion to the marker's grid); 1 for other formats."""
    if info.format != "jpeg":
        return 1
    for r in (8, 4, 2):
        if info.width // r >= min_width and info.height // r >= min_width * ROWS // COLS:
            return r
    return 1


def message_rows(height: int) -> int:
    """How many pixel rows, from the top of a frame `height` high, hold the signed message."""
    return -(-_MESSAGE_MODULE_ROWS * height // ROWS)


def read_scaled(data: bytes, info: Probe, reduce: int) -> bytes | None:
    """The signed message read at 1/`reduce` scale: from the rows that hold it when the
    JPEG allows (`top_rows`), else from the whole frame, as an exact codeword."""
    cut = top_rows(data, info, message_rows(info.height))
    if cut is None:
        return _read_codeword(load_gray(data, info, reduce=reduce))
    top, rows = cut
    gray = load_gray_top(top, Probe(info.format, info.width, rows), reduce=reduce)
    return None if gray is None else _read_message(gray, -(-info.height // reduce))


@lru_cache(maxsize=64)
def _centre_index(h: int, w: int) -> np.ndarray:
    """Flat pixel index of each data module's centre, for a frame that fills an h×w image."""
    x = (LAYOUT.data_cols[:_CODE_BITS] + 0.5) * (w / COLS) - 0.5
    y = (LAYOUT.data_rows[:_CODE_BITS] + 0.5) * (h / ROWS) - 0.5
    rows = np.clip(np.rint(y).astype(np.intp), 0, h - 1)
    cols = np.clip(np.rint(x).astype(np.intp), 0, w - 1)
    index: np.ndarray = rows * w + cols
    return index


def _dark(samples: np.ndarray) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """1 for each sample darker than Otsu's threshold between the two module levels."""
    _, dark = cv2.threshold(samples, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    return cast("np.ndarray[Any, np.dtype[np.uint8]]", dark)


@lru_cache(maxsize=64)
def _message_index(h: int, w: int) -> tuple[np.ndarray, int]:
    """`_centre_index` of the message's modules, and how many rows from the top they need."""
    index = _centre_index(h, w)[:_MESSAGE_BITS]
    return index, int(index.max()) // w + 1


def _read_message(img: np.ndarray, full_height: int) -> bytes | None:
    """The signed message read from the top rows (`img`) of a frame `full_height` pixels high.

    No parity is read, so nothing is checked here: the MAC is what accepts it. As few
    library calls as can be: each costs tens of µs when the caches are cold, which is how
    a viewer finds them between frames.
    """
    h, w = img.shape
    index, needed = _message_index(full_height, w)
    if needed > h:
        return None
    bits = int.from_bytes(np.packbits(_dark(img.take(index))).tobytes(), "big")
    return (bits ^ _MESSAGE_WHITENING).to_bytes(PAYLOAD_BYTES, "big")


def _read_codeword(img: np.ndarray) -> bytes | None:
    """The signed message when the frame fills `img` and reads as an exact codeword.

    No error correction (a single symbol error means decoding the full frame), so what
    it returns is exactly what the camera encoded.
    """
    h, w = img.shape
    codeword = np.packbits(_dark(img.take(_centre_index(h, w)))) ^ _WHITENING_BYTES
    if not ecc.is_codeword(codeword):
        return None
    return codeword[:PAYLOAD_BYTES].tobytes()
