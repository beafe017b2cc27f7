"""The two brightness levels of a marker's modules, and the threshold between them.

A 1-D 2-means on the sorted samples (prefix sums, so each step is one bisection), in
plain Python: a verdict thresholds a few hundred samples, where each NumPy call would
cost more than the arithmetic, and it needs no OpenCV.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate

__all__ = ["two_means"]


def two_means(ordered: Sequence[float]) -> tuple[float, float, float]:
    """Dark mean, light mean and the threshold between them, of ``ordered`` (sorted,
    not empty); a sample is dark when it is below the threshold."""
    n = len(ordered)
    sums = list(accumulate(ordered))
    # start between the extremes: a median start can sit exactly on one cluster
    lo, hi = ordered[0], ordered[-1]
    thr = (lo + hi) / 2
    for _ in range(6):
        i = bisect_left(ordered, thr)
        if i in (0, n):
            break
        lo, hi = sums[i - 1] / i, (sums[-1] - sums[i - 1]) / (n - i)
        new = (lo + hi) / 2
        if new == thr:
            break
        thr = new
    return float(lo), float(hi), float(thr)
