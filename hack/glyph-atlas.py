#!/usr/bin/env python3
"""Writes ``operator/canarywatch/markers/glyphs.npz``: the caption's glyph atlas.

OpenCV's Hershey simplex font (the caption's font before cameras stopped loading
OpenCV), every printable ASCII character drawn once, large and without anti-aliasing;
``markers.caption`` shrinks them to the frame's size by area averaging, which
anti-aliases them. Run again only to change the font (the file is committed; OpenCV is
a development dependency of this script, not of the cameras):

    .venv/bin/python hack/glyph-atlas.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "operator/canarywatch/markers/glyphs.npz"
FONT = cv2.FONT_HERSHEY_SIMPLEX
SCALE = 4.0  # cap height ~90 px: above the largest caption (3840x2160, ~75 px)
THICKNESS = round(SCALE * 1.6)  # the stroke the caption had at every scale
CHARS = "".join(chr(c) for c in range(32, 127))


def main() -> None:
    (_, height), baseline = cv2.getTextSize("Hg", FONT, SCALE, THICKNESS)
    pad = THICKNESS
    rows = height + baseline + 2 * pad
    origin_y = pad + height
    cells, lefts, widths, bearings, advances = [], [], [], [], []
    x = 0
    for char in CHARS:
        (single, _), _ = cv2.getTextSize(char, FONT, SCALE, THICKNESS)
        (double, _), _ = cv2.getTextSize(char * 2, FONT, SCALE, THICKNESS)
        advance = double - single
        canvas = np.zeros((rows, advance + 4 * pad), np.uint8)
        cv2.putText(canvas, char, (2 * pad, origin_y), FONT, SCALE, 1, THICKNESS, cv2.LINE_8)
        used = np.flatnonzero(canvas.any(axis=0))
        first, last = (int(used[0]), int(used[-1]) + 1) if used.size else (2 * pad, 2 * pad + 1)
        cells.append(canvas[:, first:last])
        lefts.append(x)
        widths.append(last - first)
        bearings.append(first - 2 * pad)
        advances.append(advance)
        x += last - first
    ink = np.concatenate(cells, axis=1).astype(bool)
    h = CHARS.index("H")
    cap = origin_y - int(np.flatnonzero(cells[h].any(axis=1))[0])
    np.savez_compressed(
        OUT,
        ink=ink,
        codes=np.frombuffer(CHARS.encode("ascii"), np.uint8),
        left=np.array(lefts, np.int32),
        width=np.array(widths, np.int32),
        bearing=np.array(bearings, np.int32),
        advance=np.array(advances, np.int32),
        metrics=np.array([origin_y, cap], np.int32),  # baseline row, cap height (rows of "H")
    )
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {ink.shape[1]}x{ink.shape[0]} px)")


if __name__ == "__main__":
    main()
