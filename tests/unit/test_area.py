"""``markers.area``: shrinking by area in numpy gives OpenCV's ``INTER_AREA`` (within rounding)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from canarywatch.markers.area import area_resize, area_weights


@pytest.mark.parametrize(
    ("shape", "size"),
    [((90, 160), (16, 9)), ((720, 1280), (16, 9)), ((37, 101), (13, 7)), ((9, 16), (16, 9))],
)
def test_area_resize_is_opencvs_inter_area(shape: tuple[int, int], size: tuple[int, int]) -> None:
    image = np.random.default_rng(7).integers(0, 256, shape, dtype=np.uint8)
    ours = np.rint(area_resize(image, *size)).astype(int)
    theirs = cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(ours - theirs).max() <= 1


def test_each_output_pixel_is_a_weighted_mean() -> None:
    weights = area_weights(7, 3)
    assert weights.shape == (3, 7) and np.allclose(weights.sum(axis=1), 1.0)
    assert np.array_equal(area_resize(np.full((5, 7), 200, np.uint8), 3, 2), np.full((2, 3), 200.0))
    with pytest.raises(ValueError, match="sizes must be positive"):
        area_weights(0, 3)
