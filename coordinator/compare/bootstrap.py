"""Confidence intervals of a difference between two runs: a block bootstrap over their requests.

Requests of a load test are not independent: those that ran at the same time shared the
server's queue and batch, and the tokens of one request share its batch slots. Resampling
single requests (or single tokens) would pretend otherwise and give intervals too narrow, so
the unit resampled is a *block*: a run of consecutive requests (for latencies), a window of
time (for rates, where how many requests ended in it is part of what varies), or a run of
consecutive tokens (for ITL). Each side is resampled on its own, ``replicates`` times; the
interval is taken from the replicates' differences, centred on the observed difference.

Speed: a replicate is never built as an array of values. Each block is reduced once to a
cumulative histogram on a fine logarithmic grid shared by both sides (``BINS`` bins, about a
percent wide) or to its sums; a replicate's cumulative histogram is then the block counts
drawn (multinomial) times the blocks', one matrix product for all replicates, and its
percentiles are found by one binary search over every replicate's row at once. The grid only shapes the spread: each side's
exact percentile (the summary's) is the centre, and the grid's own estimate is subtracted
from each replicate, so its rounding cancels. Cost: O(values) to histogram, O(replicates x
blocks x bins) to resample, whatever the number of requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Floats32 = npt.NDArray[np.float32]
Codes = npt.NDArray[np.int64]

BINS = 512  # log-spaced bins over both sides' range (5 ms .. 500 ms: 0.9 % wide)
MIN_BLOCKS = 8
MAX_BLOCKS = 100  # the resampling's cost grows with blocks; 100 blocks of 1,000 requests is plenty
MIN_TAIL = 5  # a percentile is judged only with this many values beyond it on each side


@dataclass(frozen=True, slots=True)
class Interval:
    """A confidence interval of a difference (current minus baseline)."""

    low: float
    high: float

    def above_zero(self) -> bool:
        return self.low > 0.0

    def below_zero(self) -> bool:
        return self.high < 0.0


def block_count(n: int, min_length: int = 1) -> int:
    """Blocks for ``n`` requests: about the square root (blocks long enough to hold what ran
    together, and enough of them to resample), within ``MIN_BLOCKS`` .. ``MAX_BLOCKS``, and no
    shorter than ``min_length`` requests (a closed loop's users: the requests in flight together
    share the server's batches) unless that would leave fewer than ``MIN_BLOCKS``."""
    if n <= 0:
        return 1
    k = max(MIN_BLOCKS, min(MAX_BLOCKS, round(np.sqrt(n))))
    k = min(k, max(MIN_BLOCKS, n // max(min_length, 1)))
    return int(min(n, k))


def consecutive(n: int, k: int) -> Codes:
    """Block of each of ``n`` values in order: ``k`` runs of (nearly) equal length."""
    return (np.arange(n, dtype=np.int64) * k) // max(n, 1)


def windows(times: Floats, k: int) -> Codes:
    """Block of each value by its time: ``k`` windows of equal length over the times' span."""
    if not times.size:
        return np.zeros(0, dtype=np.int64)
    lo, hi = float(times.min()), float(times.max())
    if hi <= lo:
        return np.zeros(times.size, dtype=np.int64)
    return np.minimum(((times - lo) / (hi - lo) * k).astype(np.int64), k - 1)


@dataclass(frozen=True, slots=True)
class Blocked:
    """One side's values of a metric, each with its block (``0 .. k-1``)."""

    values: Floats
    block: Codes
    k: int

    @classmethod
    def in_order(cls, values: Floats, k: int | None = None) -> Blocked:
        """Finite values in their order (which is the requests' order), in ``k`` consecutive blocks
        (by default :func:`block_count` of the values)."""
        finite = values[np.isfinite(values)]
        k = min(block_count(finite.size) if k is None else k, max(finite.size, 1))
        return cls(finite, consecutive(finite.size, k), k)


def enough_tail(n: int | None, percentile: float) -> bool:
    """Whether ``n`` values hold ``MIN_TAIL`` beyond ``percentile`` (p99 needs 500, p50 10)."""
    return n is not None and n * (1.0 - percentile / 100.0) >= MIN_TAIL - 1e-9


class Bootstrap:
    """The resampling: how many replicates, at which confidence, from a fixed seed (the same
    inputs give the same intervals)."""

    def __init__(self, replicates: int = 1000, confidence: float = 0.95, seed: int = 0) -> None:
        self.replicates = replicates
        self.confidence = confidence
        self.rng = np.random.default_rng(seed)

    def draws(self, k: int) -> Floats32:
        """How often each of ``k`` blocks is drawn, per replicate: (replicates, k)."""
        return self.rng.multinomial(k, np.full(k, 1.0 / k), size=self.replicates).astype(np.float32)

    def interval(self, point: float, replicated: Floats, centre: float) -> Interval:
        """``point`` plus the spread of the replicates' differences around ``centre``."""
        finite = replicated[np.isfinite(replicated)]
        if not finite.size:
            return Interval(point, point)
        alpha = 1.0 - self.confidence
        lo, hi = np.quantile(finite - centre, [alpha / 2, 1 - alpha / 2])
        return Interval(point + float(lo), point + float(hi))

    # -- percentiles ------------------------------------------------------------------------

    def percentile_intervals(
        self, base: Blocked, current: Blocked, percentiles: Sequence[float], points: Sequence[float]
    ) -> list[Interval]:
        """The interval of each percentile's difference; ``points``: the observed differences."""
        grid = _Grid.over(base.values, current.values)
        sides = []
        for side in (base, current):
            cum = np.cumsum(grid.histograms(side), axis=1, dtype=np.float32)  # per block: (k, BINS)
            # a replicate's cumulative counts are its draws times the blocks' (the product is linear)
            resampled = grid.percentiles(self.draws(side.k) @ cum, percentiles)
            whole = grid.percentiles(cum.sum(axis=0, keepdims=True), percentiles)[0]
            sides.append((resampled, whole))
        (b_rep, b_all), (c_rep, c_all) = sides
        diffs = c_rep - b_rep
        centres = c_all - b_all
        return [self.interval(point, diffs[:, i], float(centres[i])) for i, point in enumerate(points)]

    # -- sums and ratios of sums ------------------------------------------------------------

    def sums(self, per_block: Floats) -> Floats:
        """Replicated column sums of ``per_block`` (blocks x columns): (replicates, columns)."""
        draws = self.draws(per_block.shape[0]).astype(np.float64)
        out: Floats = draws @ per_block
        return out

    # -- a few values (cold starts) ---------------------------------------------------------

    def medians(self, values: Floats) -> Floats:
        """The median of each replicate of ``values`` resampled one by one (few values: starts)."""
        if not values.size:
            return np.full(self.replicates, np.nan)
        picks = self.rng.integers(0, values.size, size=(self.replicates, values.size))
        out: Floats = np.median(values[picks], axis=1)
        return out


def block_sums(block: Codes, k: int, columns: Sequence[Floats]) -> Floats:
    """Each column summed per block: (k, columns)."""
    out = np.zeros((k, len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        out[:, j] = np.bincount(block, weights=column, minlength=k)[:k]
    return out


@dataclass(frozen=True, slots=True)
class _Grid:
    """Log-spaced bins over both sides' values (non-positive values fall in the first bin)."""

    log_lo: float
    width: float

    @classmethod
    def over(cls, *samples: Floats) -> _Grid:
        values = [s for s in samples if s.size]
        if not values:
            return cls(0.0, 1.0)
        hi = max(float(s.max()) for s in values)
        positive = [float(s[s > 0].min()) for s in values if (s > 0).any()]
        lo = min(positive) if positive else 1.0
        hi = max(hi, lo * (1 + 1e-9))
        lo = max(lo, hi * 1e-9)  # a stray near-zero value must not stretch the grid over decades
        log_lo = float(np.log(lo))
        return cls(log_lo, max((float(np.log(hi)) - log_lo) / BINS, 1e-12))

    def histograms(self, side: Blocked) -> Floats32:
        """Counts per block and bin: (k, BINS)."""
        with np.errstate(divide="ignore"):
            logs = np.log(side.values)
        bins = np.clip(np.floor((logs - self.log_lo) / self.width), 0, BINS - 1).astype(np.int64)
        flat = np.bincount(side.block * BINS + bins, minlength=side.k * BINS)
        return flat.reshape(side.k, BINS).astype(np.float32)

    def percentiles(self, cum: Floats32, percentiles: Sequence[float]) -> Floats:
        """numpy's linear percentiles of each row of cumulative counts, reading each bin's values
        as spread evenly (in log) across it: (rows, percentiles); NaN for an empty row."""
        rows = cum.shape[0]
        cum64 = cum.astype(np.float64)
        total = cum64[:, -1]
        # rows one after another on one increasing line, so one searchsorted finds every row's bin
        offset = np.arange(rows, dtype=np.float64) * (float(total.max(initial=0.0)) + 1.0)
        line = (cum64 + offset[:, None]).ravel()
        out = np.full((rows, len(percentiles)), np.nan)
        index = np.arange(rows)
        for i, q in enumerate(percentiles):
            rank = q / 100.0 * np.maximum(total - 1.0, 0.0)  # 0-based, fractional (the linear method)
            # the first bin whose cumulative count exceeds the rank
            j = np.searchsorted(line, rank + offset, side="right") - index * BINS
            j = np.clip(j, 0, BINS - 1)
            before = np.where(j > 0, cum64[index, np.maximum(j - 1, 0)], 0.0)
            inside = np.maximum(cum64[index, j] - before, 1.0)
            share = np.clip((rank - before + 0.5) / inside, 0.0, 1.0)
            out[:, i] = np.where(total > 0, np.exp(self.log_lo + (j + share) * self.width), np.nan)
        return out
