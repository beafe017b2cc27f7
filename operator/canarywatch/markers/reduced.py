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

from functools import lru_cache
from math import ceil
from typing import NamedTuple

import numpy as np

from canarywatch.markers import ecc
from canarywatch.markers.images import Probe, load_gray, load_gray_top, top_rows
from canarywatch.markers.layout import COLS, DARK_LUMA, LAYOUT, LIGHT_LUMA, ROWS
from canarywatch.markers.levels import two_means
from canarywatch.markers.payload import PAYLOAD_BYTES
from canarywatch.markers.restarts import mcu_rows

__all__ = ["read_scaled", "reduced_jpeg", "reduced_scale", "reduction", "scaled_message"]

_CODE_BITS = ecc.CODEWORD_BYTES * 8
_WHITENING_BYTES = np.packbits(LAYOUT.whitening[:_CODE_BITS])
_CODE_WHITENING = int.from_bytes(_WHITENING_BYTES.tobytes(), "big")
# The signed message's modules sit in module rows 0..10 (codeword bytes are laid out
# top to bottom, message first): decoding those rows is enough to verify a clean frame.
_MESSAGE_BITS = PAYLOAD_BYTES * 8
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


def read_scaled(data: bytes, info: Probe, reduce: int) -> bytes | None:
    """The samples of the message's module centres at 1/`reduce` scale (one byte each),
    from the part of the JPEG that `reduced_jpeg` cuts when it can, else those of the
    whole codeword from the whole frame; None when libjpeg gave up. `scaled_message`
    reads them."""
    cut = _cut(data, info, reduce)
    if cut is None:
        whole = load_gray(data, info, reduce=reduce)
        return whole.take(_centre_index(*whole.shape)).tobytes()
    jpeg, claimed, (index, needed) = cut
    gray = load_gray_top(jpeg, claimed, reduce=reduce)
    return None if gray is None or gray.size < needed else gray.take(index).tobytes()


def scaled_message(samples: bytes, *, own_levels: bool = False) -> bytes | None:
    """The signed message `read_scaled`'s samples hold: thresholded between the module
    levels a camera renders (free, and right for a frame delivered at those levels), or
    with ``own_levels`` at the 2-means threshold of the samples (None when that reads
    the same). Samples of the message alone have no parity, so nothing is checked here:
    the MAC is what accepts it; samples of the whole codeword must read as an exact
    codeword (no error correction: what is returned is exactly what the camera encoded)."""
    bits = int(samples.translate(_NOMINAL), 2)
    if own_levels:
        nominal, (_, _, thr) = bits, two_means(sorted(samples))
        bits = int(samples.translate(_digits(ceil(thr))), 2)
        if bits == nominal:
            return None
    if len(samples) == _MESSAGE_BITS:
        return (bits ^ _MESSAGE_WHITENING).to_bytes(PAYLOAD_BYTES, "big")
    codeword = (bits ^ _CODE_WHITENING).to_bytes(ecc.CODEWORD_BYTES, "big")
    return codeword[:PAYLOAD_BYTES] if ecc.is_codeword(np.frombuffer(codeword, np.uint8)) else None


def reduced_jpeg(data: bytes, info: Probe, reduce: int) -> tuple[bytes, Probe] | None:
    """What the reduced read decodes of a baseline JPEG, and the size its header claims:
    the MCU rows holding a message module's centre, stacked, when its restart markers
    allow (`restarts.mcu_rows`), else its top rows down to the last of those
    (`images.top_rows`); None when it is decoded whole (progressive, say)."""
    cut = _cut(data, info, reduce)
    return None if cut is None else cut[:2]


class _Plan(NamedTuple):
    """How the reduced read cuts and samples the JPEGs of one geometry."""

    stacked_rows: tuple[int, ...]  # the MCU rows holding a message module's centre
    stacked: Probe  # the size of those rows stacked
    stacked_index: tuple[np.ndarray, int]  # (flat index of each centre in them, pixels needed)
    top: Probe  # the size of the top rows down to the last of them
    top_index: tuple[np.ndarray, int]


@lru_cache(maxsize=64)
def _plan(info: Probe, reduce: int) -> _Plan:
    width = -(-info.width // reduce)
    rows, stacked_index = _sampled_mcu_rows(info.height, width, reduce, info.mcu_height)
    return _Plan(
        rows,
        Probe(info.format, info.width, len(rows) * info.mcu_height),
        stacked_index,
        Probe(info.format, info.width, (rows[-1] + 1) * info.mcu_height),
        _message_index(-(-info.height // reduce), width),
    )


def _cut(data: bytes, info: Probe, reduce: int) -> tuple[bytes, Probe, tuple[np.ndarray, int]] | None:
    if not info.mcu_height:
        return None
    plan = _plan(info, reduce)
    if info.restart_interval:
        stacked = mcu_rows(data, info, plan.stacked_rows)
        if stacked is not None:
            return stacked, plan.stacked, plan.stacked_index
    top = top_rows(data, info, plan.top.height)
    return None if top is None else (top[0], plan.top, plan.top_index)


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
