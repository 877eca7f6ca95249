"""A robust trend of a series: the Theil–Sen slope and Sen's confidence interval for it
(``scipy.stats.theilslopes``).

The slope is the median of the slopes between every pair of points, so a few outliers (a
window with a GC pause, a retry storm) move it little; the interval is Sen's (1968), from the
normal approximation of Kendall's tau.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

Floats = npt.NDArray[np.float64]
# Pairs grow as n²: beyond this many points (33 hours of minute windows) the fit uses every
# k-th point, so memory stays near 100 MB; fewer points only widen the interval (never more drift).
MAX_POINTS = 2000


@dataclass(frozen=True, slots=True)
class Fit:
    """A line ``intercept + slope * x`` and the confidence interval ``[low, high]`` of its slope."""

    slope: float
    intercept: float
    low: float
    high: float
    n: int  # points fitted

    def at(self, x: float) -> float:
        return self.intercept + self.slope * x


def theil_sen(x: Floats, y: Floats, confidence: float = 0.95) -> Fit:
    """The Theil–Sen line through ``(x, y)`` with a two-sided ``confidence`` interval of its slope.

    Needs at least two distinct ``x``; more than :data:`MAX_POINTS` are thinned evenly.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("x and y must be one-dimensional and of one length")
    if x.size > MAX_POINTS:
        keep = np.linspace(0, x.size - 1, MAX_POINTS).round().astype(np.int64)
        x, y = x[keep], y[keep]
    if np.unique(x).size < 2:
        raise ValueError("a trend needs at least two distinct x")
    slope, intercept, low, high = stats.theilslopes(y, x, alpha=confidence)
    return Fit(slope=float(slope), intercept=float(intercept), low=float(low), high=float(high), n=int(x.size))
