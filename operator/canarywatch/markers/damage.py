"""Damaged frames: a JPEG scan cut short or corrupt, and what is left of a canary in it.

libjpeg decodes a scan that ends early (a cache that stored half a frame and appended
an end-of-image marker) or holds corrupt data with a warning only: the missing blocks
come out flat gray (level 128), the rest as far as it got. OpenCV drops the warning.
Judged as a whole image, such a canary has no anchors left and looked `foreign`: a
critical page and a production switch-off for a broken frame. Likewise a frame that
arrives as only its top rows (a crop) lost the bottom anchors.

So a frame that did not verify is looked at again, here:

* ``scan_damage``: libjpeg's own verdict on the scan, by a strict decode (libjpeg-turbo
  through simplejpeg, at 1/8 scale: every entropy-coded byte is still read, which is
  what raises the warning, for a fraction of the cost);
* ``intact_rows``: how far the image is real, above the gray padding;
* ``canary_border``: the canary's fixed modules (the alternating border, the anchors)
  in the rows that are there, with square modules from the width (a crop) or the
  grid of the whole image. 90 % of at least 24 modules must match, which no
  photograph in the test corpus comes near.

A damaged scan is never evidence of anything: with a canary's border in its intact
rows it is `degraded`, otherwise `undecodable`.
"""

from __future__ import annotations

import numpy as np
import simplejpeg

from canarywatch.markers.layout import COLS, LAYOUT, ROWS, ModuleKind
from canarywatch.markers.levels import two_means

__all__ = ["MIN_BORDER_MATCH", "MIN_BORDER_MODULES", "canary_border", "intact_rows", "scan_damage"]

#: Share of the visible fixed modules that must match the canary's pattern.
MIN_BORDER_MATCH = 0.9
#: Fewer visible fixed modules than this are no evidence either way.
MIN_BORDER_MODULES = 24
_MIN_CONTRAST = 24.0  # gray levels between dark and light modules (as the decoder's reads)
_PAD_LEVEL = 128  # what libjpeg writes for a block it has no data for
_MCU_ROWS = 16  # the padded MCU row may be partly real: trust nothing of it

_FIXED = [
    (int(r), int(c))
    for r, c in zip(*np.nonzero(np.isin(LAYOUT.kinds, (ModuleKind.DARK, ModuleKind.LIGHT))), strict=True)
]


# libjpeg's warnings that scan data is missing or wrong (jerror.h: JWRN_HIT_MARKER,
# JWRN_JPEG_EOF, JWRN_HUFF_BAD_CODE, JWRN_MUST_RESYNC, and JWRN_EXTRANEOUS_DATA before
# the end-of-image marker: a scan that desynchronised on a corrupt byte). Others, such
# as junk between header segments (some cameras write it), say nothing about the pixels.
_DATA_LOSS = ("premature end", "bad huffman code", "instead of rst", "before marker 0xd9")


def scan_damage(data: bytes) -> str | None:
    """libjpeg's warning that ``data``'s scan (a JPEG) lost data, or None when it did not."""
    try:
        # simplejpeg scales only to meet a minimum size: 1x1 asks for its smallest, 1/8
        simplejpeg.decode_jpeg(data, colorspace="GRAY", min_height=1, min_width=1, strict=True)
    except ValueError as error:
        message = str(error)
        if not any(sign in message.lower() for sign in _DATA_LOSS):
            return None  # another warning, or a JPEG this decoder cannot read (OpenCV could)
        return message[:120]
    return None


def intact_rows(gray: np.ndarray) -> int:
    """Rows from the top before libjpeg's gray padding (all of them when there is none)."""
    padded = np.all(gray == _PAD_LEVEL, axis=1)
    if not padded[-1]:
        return int(gray.shape[0])
    real = np.flatnonzero(~padded)
    start = int(real[-1]) + 1 if real.size else 0
    return max(0, start - _MCU_ROWS)


def canary_border(gray: np.ndarray) -> tuple[int, int] | None:
    """(matching, visible) fixed modules of the best grid hypothesis, when they show a
    canary; None otherwise."""
    h, w = gray.shape
    module_w = w / COLS
    best: tuple[int, int] | None = None
    for module_h in {module_w, h / ROWS}:
        found = _match(gray, module_w, module_h)
        if found is not None and (best is None or found[0] > best[0]):
            best = found
    return best


def _match(gray: np.ndarray, module_w: float, module_h: float) -> tuple[int, int] | None:
    h = gray.shape[0]
    visible = [(r, c) for r, c in _FIXED if (r + 1) * module_h <= h]
    if len(visible) < MIN_BORDER_MODULES or module_w < 2 or module_h < 2:
        return None
    samples = np.empty(len(visible), np.float32)
    for k, (r, c) in enumerate(visible):
        y0, y1 = int((r + 0.3) * module_h), max(int((r + 0.7) * module_h), int((r + 0.3) * module_h) + 1)
        x0, x1 = int((c + 0.3) * module_w), max(int((c + 0.7) * module_w), int((c + 0.3) * module_w) + 1)
        samples[k] = gray[y0:y1, x0:x1].mean()
    lo, hi, threshold = two_means(sorted(samples.tolist()))
    dark = samples < threshold
    if dark.all() or not dark.any() or hi - lo < _MIN_CONTRAST:
        return None
    expected = np.array([LAYOUT.fixed[r, c] for r, c in visible])
    matching = int(np.count_nonzero(dark == expected))
    if matching < MIN_BORDER_MATCH * len(visible):
        return None
    return matching, len(visible)
