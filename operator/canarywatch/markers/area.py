"""Area resampling in numpy: each output pixel the mean of the input it covers.

What OpenCV's ``INTER_AREA`` does when shrinking, without loading OpenCV: the caption's
glyphs are drawn large once and shrunk to the frame's size (anti-aliased by the
averaging), and an incident's thumbnail is a frame averaged into 16×9 cells. Separable:
one weight matrix per axis, so a resize is two matrix products.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["area_resize", "area_weights"]


@lru_cache(maxsize=256)
def area_weights(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) float32: output pixel ``i`` covers input ``[i, i + 1) * size_in /
    size_out``, each input pixel weighted by the share of it covered (rows sum to 1)."""
    if size_in < 1 or size_out < 1:
        raise ValueError(f"sizes must be positive, got {size_in} -> {size_out}")
    edges = np.arange(size_out + 1, dtype=np.float64) * (size_in / size_out)
    start, end = edges[:-1, None], edges[1:, None]
    pixels = np.arange(size_in, dtype=np.float64)[None, :]
    covered = np.clip(np.minimum(end, pixels + 1) - np.maximum(start, pixels), 0.0, None)
    weights: np.ndarray = (covered / (end - start)).astype(np.float32)
    weights.setflags(write=False)
    return weights


def area_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """A 2-D ``image`` resampled to ``height`` × ``width`` by area, as float32 (not rounded)."""
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"area_resize needs a non-empty 2-D image, got shape {image.shape}")
    rows = area_weights(image.shape[0], height)
    columns = area_weights(image.shape[1], width)
    return np.asarray(rows @ image.astype(np.float32) @ columns.T, dtype=np.float32)
