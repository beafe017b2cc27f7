"""The caption's text, drawn with numpy from a glyph atlas (no OpenCV in a camera).

``glyphs.npz`` (written by ``hack/glyph-atlas.py``) holds OpenCV's Hershey simplex
glyphs of printable ASCII, drawn once large and without anti-aliasing. A glyph is
shrunk to the line's size by area averaging (``markers.area``), which anti-aliases it,
once per size (cached); drawing a line is then pasting those coverage tiles side by
side and mapping coverage to colour through a 256-entry table.

A line is scaled to fit its half of the caption box as the caption always was: the
capital height 62 % of the line, the width at most 94 % of the box, centred.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

import numpy as np

from canarywatch.markers.area import area_resize

__all__ = ["Font", "draw_line", "font"]

_CAP_SHARE = 0.62  # of the line's height
_WIDTH_SHARE = 0.94  # of the box's width


@dataclass(frozen=True, eq=False)  # hashed by identity: ``tile`` is cached per font
class Font:
    """The atlas: ``ink`` (rows, columns) bool, and per character its cell's ``left``
    column and ``width``, its ``bearing`` (cell left minus pen position) and ``advance``,
    all in atlas pixels; ``baseline`` is the atlas row of the baseline and ``cap`` the
    height of a capital above it."""

    ink: np.ndarray
    index: dict[str, int]
    left: np.ndarray
    width: np.ndarray
    bearing: np.ndarray
    advance: np.ndarray
    baseline: int
    cap: int
    advances: dict[str, int]

    def glyph(self, char: str) -> int:
        return self.index.get(char, self.index["?"])

    def text_width(self, text: str) -> int:
        """The pen's travel over ``text``, in atlas pixels."""
        advances = self.advances
        return sum(advances[c] if c in advances else advances["?"] for c in text)

    @lru_cache(maxsize=512)  # noqa: B019 - one Font a process (``font()``), never freed
    def tile(self, char: str, scale: float) -> np.ndarray:
        """``char``'s coverage (0–255, uint8) at ``scale`` frame pixels per atlas pixel,
        its top row at the atlas's top row."""
        i = self.glyph(char)
        cell = self.ink[:, int(self.left[i]) : int(self.left[i] + self.width[i])]
        rows = max(1, round(cell.shape[0] * scale))
        columns = max(1, round(cell.shape[1] * scale))
        coverage: np.ndarray = np.rint(area_resize(cell.view(np.uint8), columns, rows) * 255).astype(np.uint8)
        coverage.setflags(write=False)
        return coverage


@cache
def font() -> Font:
    """The atlas, read once per process."""
    with resources.files(__package__).joinpath("glyphs.npz").open("rb") as f, np.load(f) as atlas:
        codes = atlas["codes"].tobytes().decode("ascii")
        baseline, cap = (int(v) for v in atlas["metrics"])
        return Font(
            ink=atlas["ink"].astype(bool),
            index={char: i for i, char in enumerate(codes)},
            left=atlas["left"],
            width=atlas["width"],
            bearing=atlas["bearing"],
            advance=atlas["advance"],
            baseline=baseline,
            cap=cap,
            advances={char: int(atlas["advance"][i]) for i, char in enumerate(codes)},
        )


#: (left of the tile from the pen, the tile in colour or None for a blank, the advance)
_Glyph = tuple[float, "np.ndarray | None", float]
_WORDS = 256  # words kept drawn, per size and colours: a caption's date and time recur


class _Face:
    """The glyphs and words drawn so far at one scale in one pair of colours."""

    def __init__(self, scale: float, background: tuple[int, ...], ink: tuple[int, ...]) -> None:
        self.scale, self.background, self.ink = scale, background, ink
        self.glyphs: dict[str, _Glyph] = {}
        #: (word, sub-pixel start) -> (left from the pen's pixel, patch, advance)
        self.words: OrderedDict[tuple[str, float], tuple[int, np.ndarray | None, float]] = OrderedDict()

    def glyph(self, char: str) -> _Glyph:
        """``char``'s tile: ``background`` blended towards ``ink`` by its coverage."""
        glyph = self.glyphs.get(char)
        if glyph is None:
            f = font()
            i = f.glyph(char)
            tile = None
            if char != " ":
                coverage = f.tile(char, self.scale)[..., None].astype(np.float32) / 255
                bg, fg = np.array(self.background, np.float32), np.array(self.ink, np.float32)
                tile = np.rint(bg + (fg - bg) * coverage).astype(np.uint8)
                tile.setflags(write=False)
            glyph = self.glyphs[char] = (int(f.bearing[i]) * self.scale, tile, int(f.advance[i]) * self.scale)
        return glyph

    def word(self, word: str, fraction: float) -> tuple[int, np.ndarray | None, float]:
        """(left from the pen's whole pixel, the word's patch, its advance) for a word whose pen starts
        ``fraction`` of a pixel right of a whole one: each glyph at its rounded position,
        overlaps resolved by the per-channel minimum (the darker, more covered)."""
        key = (word, fraction)
        found = self.words.get(key)
        if found is not None:
            self.words.move_to_end(key)
            return found
        placed = []
        pen = fraction
        for char in word:
            bearing, tile, advance = self.glyph(char)
            if tile is not None:
                placed.append((round(pen + bearing), tile))
            pen += advance
        patch = None
        left = 0
        if placed:
            left = min(x for x, _ in placed)
            right = max(x + t.shape[1] for x, t in placed)
            patch = np.empty((placed[0][1].shape[0], right - left, len(self.background)), np.uint8)
            patch[...] = self.background
            for x, t in placed:
                span = patch[:, x - left : x - left + t.shape[1]]
                np.minimum(span, t, out=span)
            patch.setflags(write=False)
        found = self.words[key] = (left, patch, pen - fraction)
        if len(self.words) > _WORDS:
            self.words.popitem(last=False)
        return found


@lru_cache(maxsize=64)
def _face(scale: float, background: tuple[int, ...], ink: tuple[int, ...]) -> _Face:
    return _Face(scale, background, ink)


def draw_line(
    frame: np.ndarray,
    box: tuple[int, int, int, int],
    index: int,
    text: str,
    *,
    ink: tuple[int, ...],
    background: tuple[int, ...],
) -> None:
    """Line ``index`` (0 or 1) of ``text`` in ``frame``'s caption ``box`` (x0, x1, y0,
    y1), over ``background`` (what the box is filled with) in colour ``ink``, which must
    be darker in every channel: ink is laid on with a per-channel minimum, so where
    glyphs (or the other line) overlap the darker wins, as the more covered pixel, and
    pixels no darker than the background are left as they are. Ink that falls outside
    ``frame`` is cut.

    Word by word: a word's patch is kept for the next line with the same word at the
    same sub-pixel position (a caption's date and time, frame after frame)."""
    if any(i > b for i, b in zip(ink, background, strict=True)):
        raise ValueError(f"ink {ink} must be darker than the background {background} in every channel")
    f = font()
    x0, x1, y0, y1 = box
    box_w, line_h = x1 - x0, (y1 - y0) / 2
    width = f.text_width(text)
    scale = min(_CAP_SHARE * line_h / f.cap, _WIDTH_SHARE * box_w / max(1, width))
    baseline_y = round(y0 + line_h * index + (line_h + f.cap * scale) / 2)
    top = baseline_y - round(f.baseline * scale)
    pen = x0 + (box_w - width * scale) / 2
    height, frame_w = frame.shape[:2]
    face = _face(scale, tuple(background), tuple(ink))
    space = face.glyph(" ")[2]
    for n, word in enumerate(text.split(" ")):
        if n:
            pen += space
        whole = math.floor(pen)
        left, patch, advance = face.word(word, pen - whole)
        pen += advance
        if patch is None:
            continue
        left += whole
        ty0, tx0 = max(0, -top), max(0, -left)
        ty1, tx1 = min(patch.shape[0], height - top), min(patch.shape[1], frame_w - left)
        if ty0 < ty1 and tx0 < tx1:
            region = frame[top + ty0 : top + ty1, left + tx0 : left + tx1]
            np.minimum(region, patch[ty0:ty1, tx0:tx1], out=region)
