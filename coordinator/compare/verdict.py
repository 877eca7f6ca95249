"""The verdict of one metric: better, same or worse, from its change, its threshold and its interval.

A change is *worse* only when it is both beyond the threshold (``coordinator.compare.thresholds``)
and significant in the bad direction: the confidence interval of the delta lies wholly on the
bad side of zero (above zero for a latency or an error rate, below for a throughput). *Better*
is the mirror. Anything else is *same*: a large change the data cannot tell from noise is not
a regression, and neither is a significant change too small to matter. A point comparison
(one side has summaries only, so there is no interval) is judged by the threshold alone, and
says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.compare.bootstrap import Interval
from coordinator.compare.metrics import Direction
from coordinator.compare.result import Verdict
from coordinator.compare.thresholds import Limit


@dataclass(frozen=True, slots=True)
class Judged:
    beyond_threshold: bool
    significant: bool | None  # None: no interval (a point comparison)
    verdict: Verdict


def judge(direction: Direction, baseline: float, delta: float, limit: Limit, interval: Interval | None) -> Judged:
    beyond = limit.exceeded(delta, baseline)
    bad = delta > 0 if direction is Direction.LOWER else delta < 0
    if interval is None:
        significant = None
        proven = True
    else:
        above, below = interval.above_zero(), interval.below_zero()
        significant = above or below
        # the interval must exclude zero on the side the change is on
        proven = (above if delta > 0 else below) if delta != 0 else False
    if not beyond or not proven or delta == 0:
        return Judged(beyond, significant, Verdict.SAME)
    return Judged(beyond, significant, Verdict.WORSE if bad else Verdict.BETTER)
