"""The confidence interval of each metric's delta, from both sides' per-request values or counts.

- Latencies: a block bootstrap of each percentile (``coordinator.compare.bootstrap``), over
  runs of consecutive requests (TTFT, TPOT, E2E) or of the tokens of consecutive requests
  (ITL); a percentile is judged only where both sides have enough values beyond it
  (:func:`~coordinator.compare.bootstrap.enough_tail`). Blocks are counted in requests for
  every metric and are no shorter than a closed loop's users: requests in flight together
  share the server's batches (one slow step slows the tokens of all of them), and blocks that
  cut through them would make the intervals too narrow (false alarms).
- Rates of a closed loop (a fixed number of users): by Little's law the rate is the users over
  the time a request takes, so blocks of consecutive requests are resampled with their output
  tokens, their count, the good ones and the time each took (schedule to end), and each
  replicate's rate is the observed one scaled by its ratio of sums (tokens over time). Windows
  of time would not do here: in a closed loop a window with many completions is followed by
  one with few, and resampling windows as if independent makes the interval far too wide.
  Think time is not in a request's time, so the interval is, if anything, too wide (cautious).
- Rates of an open loop (a request rate) or of unknown load: output tokens, requests and good
  requests summed per window of time (when each request ended), windows resampled, over the
  step's duration: how many requests ended, and with how many tokens, varies as it does
  between runs.
- Error rates: failed over all requests, per block of consecutive requests, resampled as a
  ratio of sums. Error rates by class, and any error rate where a side has counts only: the
  Agresti-Caffo interval of a difference of two proportions (one failure and one success added
  to each side, so zero errors on both sides gives a sensible interval).
- Cold starts: few values (one per container start), resampled one by one, at the median.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from coordinator.baselines.samples import StepSamples
from coordinator.compare.bootstrap import (
    Blocked,
    Bootstrap,
    Floats,
    Interval,
    block_count,
    block_sums,
    consecutive,
    enough_tail,
    windows,
)

RATE_COLUMNS: tuple[str, ...] = ("output_tokens_per_s", "requests_per_s", "goodput_per_s")


def _percentile(stat: str) -> float:
    return float(stat.removeprefix("p").replace("_", "."))


def latency(
    boot: Bootstrap,
    base: Floats,
    current: Floats,
    stats: Sequence[str],
    points: Sequence[float],
    blocks: tuple[int, int],
) -> list[Interval | None]:
    """Each statistic's interval (``None`` where a side has too few values beyond it); ``blocks``:
    each side's number of blocks (:func:`blocks_of`)."""
    b, c = Blocked.in_order(base, blocks[0]), Blocked.in_order(current, blocks[1])
    judged = [
        i
        for i, stat in enumerate(stats)
        if enough_tail(b.values.size, _percentile(stat)) and enough_tail(c.values.size, _percentile(stat))
    ]
    out: list[Interval | None] = [None] * len(stats)
    if not judged:
        return out
    found = boot.percentile_intervals(b, c, [_percentile(stats[i]) for i in judged], [points[i] for i in judged])
    for i, interval in zip(judged, found, strict=True):
        out[i] = interval
    return out


def blocks_of(samples: StepSamples, in_flight: int) -> int:
    """A side's blocks, counted in requests whatever the metric (an ITL block holds the tokens of
    consecutive requests), none shorter than the requests in flight together where known."""
    return block_count(samples.requests, in_flight)


def _rates(boot: Bootstrap, samples: StepSamples, closed: bool, in_flight: int) -> tuple[Floats, Floats]:
    """One side's replicated rates (replicates x RATE_COLUMNS) and its observed ones."""
    assert samples.duration_s is not None
    n = samples.requests
    k = blocks_of(samples, in_flight)
    good = samples.good if samples.good is not None else samples.ok
    columns = [samples.output_tokens, np.ones(n), good.astype(np.float64)]
    observed = np.array([float(c.sum()) for c in columns]) / samples.duration_s
    if closed and samples.span_s is not None:
        # a closed loop's rate is its concurrency over the time a request takes (Little's law):
        # blocks of consecutive requests resampled, each with its requests' time, as a ratio
        per_block = block_sums(consecutive(n, k), k, [*columns, samples.span_s])
        replicated = boot.sums(per_block)
        whole = per_block.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = (replicated[:, :-1] / replicated[:, -1:]) / (whole[:-1] / whole[-1])
        out: Floats = observed * ratio
        return out, observed
    block = windows(samples.end_s, k) if samples.end_s is not None else consecutive(n, k)
    per_block = block_sums(block, k, columns)
    return boot.sums(per_block) / samples.duration_s, observed


def rates(
    boot: Bootstrap,
    base: StepSamples,
    current: StepSamples,
    points: dict[str, float],
    closed: bool = False,
    in_flight: tuple[int, int] = (1, 1),
) -> dict[str, Interval]:
    """The intervals of the rates of ``points`` (metric -> observed delta); none without durations.
    ``closed``: both steps ran a fixed number of users (a closed loop), else windows of time."""
    if not base.duration_s or not current.duration_s or not base.requests or not current.requests:
        return {}
    (b_rep, b_all), (c_rep, c_all) = (
        _rates(boot, base, closed, in_flight[0]),
        _rates(boot, current, closed, in_flight[1]),
    )
    diffs, centres = c_rep - b_rep, c_all - b_all
    return {
        name: boot.interval(points[name], diffs[:, j], float(centres[j]))
        for j, name in enumerate(RATE_COLUMNS)
        if name in points
    }


def error_rate(
    boot: Bootstrap, base: StepSamples, current: StepSamples, point: float, in_flight: tuple[int, int] = (1, 1)
) -> Interval | None:
    """The interval of the error rate's delta, over blocks of consecutive requests."""
    if not base.requests or not current.requests:
        return None
    sides = []
    for samples, flight in zip((base, current), in_flight, strict=True):
        k = blocks_of(samples, flight)
        per_block = block_sums(
            consecutive(samples.requests, k), k, [np.ones(samples.requests), (~samples.ok).astype(np.float64)]
        )
        rep = boot.sums(per_block)
        with np.errstate(invalid="ignore", divide="ignore"):
            sides.append((rep[:, 1] / rep[:, 0], per_block[:, 1].sum() / per_block[:, 0].sum()))
    (b_rep, b_all), (c_rep, c_all) = sides
    return boot.interval(point, c_rep - b_rep, float(c_all - b_all))


def proportions(errors: tuple[int, int], requests: tuple[int, int], confidence: float) -> Interval | None:
    """Agresti-Caffo interval of (current - baseline) error shares, from counts."""
    (e_b, e_c), (n_b, n_c) = errors, requests
    if n_b <= 0 or n_c <= 0:
        return None
    p_b, p_c = (e_b + 1) / (n_b + 2), (e_c + 1) / (n_c + 2)
    se = float(np.sqrt(p_b * (1 - p_b) / (n_b + 2) + p_c * (1 - p_c) / (n_c + 2)))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    centre = p_c - p_b
    return Interval(centre - z * se, centre + z * se)


def median(boot: Bootstrap, base: Floats, current: Floats, point: float) -> Interval | None:
    """The interval of a median's delta over a few values each (cold starts); None with under 3 a side."""
    if base.size < 3 or current.size < 3:
        return None
    diffs = boot.medians(current) - boot.medians(base)
    return boot.interval(point, diffs, float(np.median(current) - np.median(base)))
