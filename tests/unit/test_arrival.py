"""Open-loop arrivals: the rate and burstiness of each kind, and ramps — from zero and from a
non-zero rate — as ``loadgen.arrival`` schedules them and as a scenario's ramp phase declares them."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest

from coordinator.plan.steps import LocustStep, build_plan
from coordinator.scenario.loader import parse
from loadgen.arrival import rate_at, schedule, time_at
from loadgen.spec import ArrivalSpec
from tests.paths import ROOT


def first(spec: ArrivalSpec, rate: float, n: int, seed: int = 0) -> list[float]:
    """The first ``n`` send times of a schedule that starts at 0."""
    return list(itertools.islice(schedule(spec, rate, random.Random(seed), 0.0), n))


def per_second(times: list[float], seconds: int) -> list[int]:
    """How many of ``times`` fall in each whole second [k, k + 1), for k < ``seconds``."""
    return [sum(1 for t in times if k <= t < k + 1) for k in range(seconds)]


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


# 10 -> 50 requests/s over 10 s: the rate is 10 + 4 t, so second k (k < 10) holds 12 + 4 k arrivals
# (the integral over [k, k + 1]), 300 over the ramp, and 50 a second after it.
RAMP_10_TO_50 = ArrivalSpec(kind="constant", ramp_seconds=10, ramp_from=0.2)
EXPECTED_PER_SECOND = [12 + 4 * k for k in range(10)] + [50, 50, 50]


def expected_by(t: float) -> float:
    """Arrivals due by ``t`` seconds into the 10 -> 50 ramp (the cumulative rate)."""
    return 10 * t + 2 * t * t if t <= 10 else 300 + 50 * (t - 10)


def test_a_ramp_from_a_non_zero_rate_starts_at_that_rate_and_rises_linearly() -> None:
    for t, rate in ((0, 10), (1, 14), (2.5, 20), (5, 30), (7.5, 40), (9.99, 49.96), (10, 50), (30, 50)):
        assert rate_at(RAMP_10_TO_50, 50.0, t) == pytest.approx(rate), t


def test_a_ramp_from_a_non_zero_rate_is_due_when_its_rate_integrates_to_each_arrival() -> None:
    for t in (0.25, 1, 2, 3.5, 5, 8, 10, 10.5, 12):
        assert time_at(RAMP_10_TO_50, 50.0, expected_by(t)) == pytest.approx(t), t


def test_a_ramp_from_a_non_zero_rate_sends_each_second_what_the_rate_adds_up_to() -> None:
    times = first(RAMP_10_TO_50, 50.0, 500)
    counts = per_second(times, 13)
    assert all(abs(got - want) <= 1 for got, want in zip(counts, EXPECTED_PER_SECOND, strict=True)), counts
    assert sum(1 for t in times if t < 10) in (299, 300, 301)
    assert times[0] == pytest.approx((-10 + (100 + 8) ** 0.5) / 4)  # the first one: 10 t + 2 t^2 = 1
    # a Poisson process ramps the same way, on average
    poisson = RAMP_10_TO_50.model_copy(update={"kind": "poisson"})
    runs = [first(poisson, 50.0, 700, seed) for seed in range(20)]
    for lo, hi in ((0, 5), (5, 10), (10, 12)):
        mean = statistics.fmean(sum(1 for t in times if lo <= t < hi) for times in runs)
        assert mean == pytest.approx(expected_by(hi) - expected_by(lo), rel=0.05), (lo, hi)


def test_a_ramp_from_the_full_rate_is_the_steady_schedule() -> None:
    flat = ArrivalSpec(kind="poisson", ramp_seconds=10, ramp_from=1.0)
    steady = ArrivalSpec(kind="poisson")
    assert first(flat, 20.0, 300, seed=3) == pytest.approx(first(steady, 20.0, 300, seed=3))
    assert rate_at(flat, 20.0, 4) == 20.0


def test_a_ramp_phase_from_a_non_zero_rate_becomes_that_ramp_on_every_worker() -> None:
    text = """\
name: ramp
target: {kind: simulator}
workloads:
  - {name: chat, prompt: {kind: synthetic, tokens: 64}, output: 16}
phases:
  - {name: up, kind: ramp, from_rate: 10, rate: 50, duration: 10s, arrival: {kind: constant}}
workers: 2
"""
    scenario, problems, _ = parse(text, "s.yaml", ROOT)
    assert not problems, [str(p) for p in problems]
    (step,) = build_plan(scenario).steps
    assert isinstance(step, LocustStep) and step.users == 2  # one dispatcher per worker
    command = step.command
    assert command.mode == "open" and command.rate == 50 and command.worker_rate == 25
    assert command.arrival.kind == "constant"
    assert command.arrival.ramp_seconds == 10 and command.arrival.ramp_from == pytest.approx(0.2)
    # what each worker does with it: rates and arrivals that add up to the phase's 10 -> 50 ramp
    for t in (0, 2.5, 5, 10, 12):
        assert 2 * rate_at(command.arrival, command.worker_rate, t) == pytest.approx(rate_at(RAMP_10_TO_50, 50, t))
    counts = [2 * n for n in per_second(first(command.arrival, command.worker_rate, 250), 13)]  # constant: alike
    assert all(abs(got - want) <= 2 for got, want in zip(counts, EXPECTED_PER_SECOND, strict=True)), counts
