"""The reduced-scale read: the signed message at the least decoding cost.

Nearly every frame a viewer receives is a clean canary, and for those the verdict can
cost less than decoding the frame: the JPEG header says how big a module is, libjpeg's
DCT scaling decodes at 1/2–1/8 scale with a module still >= 5 px, and of a baseline JPEG
only the rows holding the signed message are entropy-decoded (`images.top_rows`). One
sample at each module centre, the threshold between the two module levels (`levels`):
what comes out is a message only the MAC can accept (`Decoder` checks it). Whatever does
not verify is decoded again at full resolution, so nothing but a verified canary is ever
concluded from these reads.

The samples are thresholded and packed in plain Python (a byte translation to binary
digits, one `int` parse): a few hundred samples cost less that way than in NumPy calls,
which cost tens of µs each when the caches are cold, as a viewer finds them between
frames. No OpenCV here.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from math import ceil

import numpy as np

from canarywatch.markers import ecc
from canarywatch.markers.images import Probe, load_gray, load_gray_top, top_rows
from canarywatch.markers.layout import COLS, DARK_LUMA, LAYOUT, LIGHT_LUMA, ROWS
from canarywatch.markers.levels import two_means
from canarywatch.markers.payload import PAYLOAD_BYTES
from canarywatch.markers.restarts import mcu_rows

__all__ = ["message_rows", "read_scaled", "reduced_scale", "reduction", "sampled_mcu_rows"]

_CODE_BITS = ecc.CODEWORD_BYTES * 8
_WHITENING_BYTES = np.packbits(LAYOUT.whitening[:_CODE_BITS])
_CODE_WHITENING = int.from_bytes(_WHITENING_BYTES.tobytes(), "big")
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


def read_scaled(data: bytes, info: Probe, reduce: int) -> Iterator[bytes]:
    """The signed message read at 1/`reduce` scale: from the MCU rows that hold its
    module centres when the JPEG's restart markers allow (`restarts.mcu_rows`), else the
    top rows that hold it when the JPEG allows (`top_rows`), else from the whole frame, as
    an exact codeword. Read first at the threshold between the module levels a camera
    renders, then, when that was not accepted and the samples read otherwise, at the
    threshold between their own levels."""
    width = -(-info.width // reduce)
    if info.restart_interval:
        rows, index = _sampled_mcu_rows(info.height, width, reduce, info.mcu_height)
        stacked = mcu_rows(data, info, rows)
        if stacked is not None:
            height = len(rows) * info.mcu_height
            yield from _messages(stacked, Probe(info.format, info.width, height), reduce, index)
            return
    cut = top_rows(data, info, message_rows(info.height))
    if cut is not None:
        index = _message_index(-(-info.height // reduce), width)
        yield from _messages(cut[0], Probe(info.format, info.width, cut[1]), reduce, index)
        return
    whole = load_gray(data, info, reduce=reduce)
    for bits in _readings(whole.take(_centre_index(*whole.shape)).tobytes()):
        codeword = (bits ^ _CODE_WHITENING).to_bytes(ecc.CODEWORD_BYTES, "big")
        # no error correction: what is returned is exactly what the camera encoded
        if ecc.is_codeword(np.frombuffer(codeword, np.uint8)):
            yield codeword[:PAYLOAD_BYTES]


def sampled_mcu_rows(info: Probe, reduce: int) -> tuple[int, ...]:
    """The MCU rows of a baseline JPEG (``info``) that the reduced read samples at 1/``reduce``."""
    return _sampled_mcu_rows(info.height, -(-info.width // reduce), reduce, info.mcu_height)[0]


def _messages(jpeg: bytes, claimed: Probe, reduce: int, index: tuple[np.ndarray, int]) -> Iterator[bytes]:
    """The message read from ``jpeg`` (a `top_rows` or `mcu_rows` cut, its size
    ``claimed``) at ``index``. No parity is read, so nothing is checked here: the MAC is
    what accepts it."""
    gray = load_gray_top(jpeg, claimed, reduce=reduce)
    if gray is None or gray.size < index[1]:
        return
    for bits in _readings(gray.take(index[0]).tobytes()):
        yield (bits ^ _MESSAGE_WHITENING).to_bytes(PAYLOAD_BYTES, "big")


@lru_cache(maxsize=64)
def _centre_index(h: int, w: int) -> np.ndarray:
    """Flat pixel index of each data module's centre, for a frame that fills an h×w image."""
    x = (LAYOUT.data_cols[:_CODE_BITS] + 0.5) * (w / COLS) - 0.5
    y = (LAYOUT.data_rows[:_CODE_BITS] + 0.5) * (h / ROWS) - 0.5
    rows = np.clip(np.rint(y).astype(np.intp), 0, h - 1)
    cols = np.clip(np.rint(x).astype(np.intp), 0, w - 1)
    index: np.ndarray = rows * w + cols
    return index


@lru_cache(maxsize=64)
def _message_index(h: int, w: int) -> tuple[np.ndarray, int]:
    """`_centre_index` of the message's modules, and how many pixels an image needs for it."""
    index = _centre_index(h, w)[:_MESSAGE_BITS]
    return index, int(index.max()) + 1


@lru_cache(maxsize=64)
def _sampled_mcu_rows(
    height: int, width: int, reduce: int, mcu_height: int
) -> tuple[tuple[int, ...], tuple[np.ndarray, int]]:
    """The MCU rows (``mcu_height`` pixels each) of a frame ``height`` pixels high that
    hold the centre of a message module, and each centre's flat index in the image those
    rows make when stacked and decoded at 1/``reduce`` scale (``width`` wide)."""
    y, x = np.divmod(_message_index(-(-height // reduce), width)[0], width)
    step = max(1, mcu_height // reduce)  # decoded rows per MCU row
    mcu = y // step
    rows = np.unique(mcu)
    index: np.ndarray = (np.searchsorted(rows, mcu) * step + y % step) * width + x
    return tuple(int(r) for r in rows), (index, int(index.max()) + 1)


@lru_cache(maxsize=257)
def _digits(cut: int) -> bytes:
    """A `bytes.translate` table: sample value → b"1" when darker than ``cut``, else b"0"."""
    return bytes(0x31 if v < cut else 0x30 for v in range(256))


_NOMINAL = _digits(ceil((DARK_LUMA + LIGHT_LUMA) / 2))


def _readings(samples: bytes) -> Iterator[int]:
    """The samples as bits (first sample most significant, 1 = dark): at the camera's
    nominal threshold (free; right for a frame delivered at the levels it was rendered
    at), then at the 2-means threshold of the samples when that reads differently."""
    nominal = int(samples.translate(_NOMINAL), 2)
    yield nominal
    _, _, thr = two_means(sorted(samples))
    own = int(samples.translate(_digits(ceil(thr))), 2)
    if own != nominal:
        yield own
