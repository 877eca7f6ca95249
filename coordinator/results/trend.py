"""A robust trend of a series: the Theil–Sen slope and Sen's confidence interval for it.

The slope is the median of the slopes between every pair of points, so a few outliers (a
window with a GC pause, a retry storm) move it little; the interval is Sen's (1968), from the
normal approximation of Kendall's tau, the same rule as ``scipy.stats.theilslopes``. It is a
few lines of numpy, so finishline does not depend on scipy for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

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

    Needs at least two distinct ``x``; more than :data:`MAX_POINTS` are thinned evenly. Ties in ``x`` correct the variance as in Sen's paper; ties
    in ``y`` are not corrected (the interval is then a little conservative).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("x and y must be one-dimensional and of one length")
    if x.size > MAX_POINTS:
        keep = np.linspace(0, x.size - 1, MAX_POINTS).round().astype(np.int64)
        x, y = x[keep], y[keep]
    dx = x[:, np.newaxis] - x
    dy = y[:, np.newaxis] - y
    pairs = dx > 0
    if not pairs.any():
        raise ValueError("a trend needs at least two distinct x")
    slopes = np.sort(dy[pairs] / dx[pairs])
    slope = float(np.median(slopes))
    intercept = float(np.median(y) - slope * np.median(x))
    n = int(x.size)
    _, ties = np.unique(x, return_counts=True)
    ties = ties[ties > 1].astype(np.float64)
    variance = (n * (n - 1) * (2 * n + 5) - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))) / 18.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    m = slopes.size
    spread = z * math.sqrt(variance)
    lo_rank = max(round((m - spread) / 2.0) - 1, 0)
    hi_rank = min(round((m + spread) / 2.0), m - 1)
    return Fit(slope=slope, intercept=intercept, low=float(slopes[lo_rank]), high=float(slopes[hi_rank]), n=n)
