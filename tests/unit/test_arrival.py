"""Open-loop arrivals: the rate and burstiness of each kind, and ramps, as ``loadgen.arrival`` schedules them."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest

from loadgen.arrival import rate_at, schedule
from loadgen.spec import ArrivalSpec


def first(spec: ArrivalSpec, rate: float, n: int, seed: int = 0) -> list[float]:
    """The first ``n`` send times of a schedule that starts at 0."""
    return list(itertools.islice(schedule(spec, rate, random.Random(seed), 0.0), n))


@pytest.mark.parametrize(("kind", "burst"), [("constant", 1.0), ("poisson", 1.0), ("gamma", 0.25), ("gamma", 4.0)])
def test_arrival_rate_and_burstiness(kind: str, burst: float) -> None:
    spec = ArrivalSpec(kind=kind, burstiness=burst)
    times = list(itertools.takewhile(lambda t: t <= 200, schedule(spec, 50.0, random.Random(5), 0.0)))
    assert abs(len(times) / 200 - 50.0) < 50.0 * 0.08
    gaps = [b - a for a, b in itertools.pairwise(times)]
    cv = statistics.pstdev(gaps) / statistics.fmean(gaps)
    expected_cv = 0.0 if kind == "constant" else (1 / burst) ** 0.5
    assert abs(cv - expected_cv) < 0.1 * max(1, expected_cv)


def test_arrival_ramp_from_zero_follows_the_rate() -> None:
    spec = ArrivalSpec(kind="constant", ramp_seconds=10, ramp_from=0.0)
    times = first(spec, 100.0, 3000)
    first_half = sum(1 for t in times if t < 5)
    second_half = sum(1 for t in times if 5 <= t < 10)
    assert abs(first_half - 125) <= 2 and abs(second_half - 375) <= 2  # integral of the linear ramp
    assert sum(1 for t in times if 10 <= t < 11) in (99, 100, 101)
    assert rate_at(spec, 100, 5) == 50 and rate_at(spec, 100, 20) == 100
