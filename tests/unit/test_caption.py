"""The caption without OpenCV: a line drawn from the glyph atlas fills its half of the
caption box as OpenCV's text did, and a word drawn from the cache is the word drawn afresh."""

from __future__ import annotations

import numpy as np
import pytest

from canarywatch.markers import caption
from canarywatch.markers.render import CAPTION_BG_BGR, DARK_BGR

TEXT = "#4294967295 2026-12-07 17:59:59Z"
BOX = (320, 960, 320, 400)  # the caption box of a 1280x720 frame


def _canvas() -> np.ndarray:
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[...] = CAPTION_BG_BGR
    return frame


def _ink(frame: np.ndarray) -> np.ndarray:
    return (frame != CAPTION_BG_BGR).any(axis=2)


@pytest.mark.parametrize("index", [0, 1])
def test_a_line_fills_its_half_of_the_box_centred(index: int) -> None:
    frame = _canvas()
    caption.draw_line(frame, BOX, index, TEXT, ink=DARK_BGR, background=CAPTION_BG_BGR)
    ys, xs = np.nonzero(_ink(frame))
    x0, x1, y0, _ = BOX
    line_top, line_h = y0 + 40 * index, 40
    assert line_top <= ys.min() and ys.max() < line_top + line_h  # in its own line
    assert (xs.max() - xs.min()) <= 0.95 * (x1 - x0)  # at most 94 % of the box, and centred
    assert abs((xs.min() + xs.max()) / 2 - (x0 + x1) / 2) <= 3
    capitals = _canvas()
    caption.draw_line(capitals, BOX, index, "HHHH", ink=DARK_BGR, background=CAPTION_BG_BGR)
    rows = np.flatnonzero((capitals == DARK_BGR).all(axis=2).any(axis=1))
    assert abs((rows.max() - rows.min() + 1) - 0.62 * line_h) <= 2  # capitals 62 % of the line
    assert (frame == DARK_BGR).all(axis=2).any()  # solid ink, anti-aliased edges


def test_a_cached_word_is_the_word_drawn_afresh() -> None:
    first, again = _canvas(), _canvas()
    caption.draw_line(first, BOX, 1, TEXT, ink=DARK_BGR, background=CAPTION_BG_BGR)
    caption.draw_line(again, BOX, 1, TEXT, ink=DARK_BGR, background=CAPTION_BG_BGR)  # from the cache
    caption._face.cache_clear()
    fresh = _canvas()
    caption.draw_line(fresh, BOX, 1, TEXT, ink=DARK_BGR, background=CAPTION_BG_BGR)
    assert np.array_equal(first, again) and np.array_equal(first, fresh)


def test_ink_must_be_darker_than_the_background() -> None:
    with pytest.raises(ValueError, match="darker than the background"):
        caption.draw_line(_canvas(), BOX, 0, "x", ink=(255, 255, 255), background=CAPTION_BG_BGR)
