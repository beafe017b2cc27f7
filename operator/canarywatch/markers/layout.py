"""Where everything sits in a canary frame, in module (cell) coordinates.

The frame is a grid of 32×18 square modules (40 px at 1280×720, so every module is
5×5 JPEG blocks and a 1/8-scale DCT decode gives each module as clean 5×5 pixels)::

    ring      row 0, row 17, col 0, col 31: alternating dark/light "hazard" border,
              so no canary row or column is ever uniform (letterbox bars are)
    anchors   four 5×5 finder patterns at the middle of each edge (corners are where
              clouds stamp clock and logo overlays): light ring, dark 3×3, light centre
    caption   16×2 modules in the centre: human-readable tenant, camera, seq, time
    data      the 348 remaining modules: 43 RS codeword bytes (8 modules each, in
              compact 4×2 tiles so a local blemish hits few bytes), whitened with a
              fixed pseudo-random mask so the dark/light split stays near 50 %

Luminance only carries the code (dark ≈ 47, light ≈ 202 in BT.601 luma), so night
mode grayscale and chroma subsampling do not touch it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from canarywatch.markers.ecc import CODEWORD_BYTES

__all__ = ["ANCHORS", "COLS", "DARK_LUMA", "LAYOUT", "LIGHT_LUMA", "ROWS", "Layout", "ModuleKind"]

COLS = 32
ROWS = 18
# BT.601 luma of the dark and light modules as a camera renders them
DARK_LUMA = 47
LIGHT_LUMA = 202


class ModuleKind:
    DATA = 0
    DARK = 1
    LIGHT = 2
    CAPTION = 3


# (col, row) of each anchor's centre module: top, bottom, left, right
ANCHORS: tuple[tuple[int, int], ...] = ((16, 3), (16, 14), (3, 9), (28, 9))
CAPTION_BOX = (8, 8, 16, 2)  # col, row, width, height


@dataclass(frozen=True)
class Layout:
    kinds: np.ndarray  # (ROWS, COLS) ModuleKind
    data_cols: np.ndarray  # module column of data bit i (codeword bit order)
    data_rows: np.ndarray
    whitening: np.ndarray  # bits XORed onto the codeword, len = data bits
    fixed: np.ndarray  # (ROWS, COLS) bool dark for non-data modules

    @property
    def data_bits(self) -> int:
        return len(self.data_cols)


def _build() -> Layout:
    kinds = np.full((ROWS, COLS), ModuleKind.DATA, dtype=np.int8)
    dark = np.zeros((ROWS, COLS), dtype=bool)
    for c in range(COLS):
        for r in (0, ROWS - 1):
            kinds[r, c] = ModuleKind.DARK if (c + r) % 2 == 0 else ModuleKind.LIGHT
    for r in range(ROWS):
        for c in (0, COLS - 1):
            kinds[r, c] = ModuleKind.DARK if (c + r) % 2 == 0 else ModuleKind.LIGHT
    for ac, ar in ANCHORS:
        for dr in range(-2, 3):
            for dc in range(-2, 3):
                ring = max(abs(dr), abs(dc))
                kinds[ar + dr, ac + dc] = ModuleKind.DARK if ring == 1 else ModuleKind.LIGHT
    c0, r0, w, h = CAPTION_BOX
    kinds[r0 : r0 + h, c0 : c0 + w] = ModuleKind.CAPTION
    dark[:] = kinds == ModuleKind.DARK

    cells = [(r, c) for r in range(ROWS) for c in range(COLS) if kinds[r, c] == ModuleKind.DATA]
    cells.sort(key=lambda rc: (rc[0] // 2, rc[1] // 4, rc[0], rc[1]))
    needed = CODEWORD_BYTES * 8
    if len(cells) < needed:
        raise AssertionError(f"layout holds {len(cells)} data modules, needs {needed}")
    # Spare modules beyond the codeword stay data-like (whitened zeros) so the
    # texture is uniform; the decoder ignores them.
    rows = np.array([rc[0] for rc in cells], dtype=np.int32)
    cols = np.array([rc[1] for rc in cells], dtype=np.int32)
    rng = np.random.default_rng(0x43414E41)  # "CANA": fixed forever, part of the format
    whitening = rng.integers(0, 2, size=len(cells), dtype=np.uint8)
    return Layout(kinds=kinds, data_cols=cols, data_rows=rows, whitening=whitening, fixed=dark)


LAYOUT = _build()
