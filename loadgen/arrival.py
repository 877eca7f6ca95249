"""Open-loop arrival schedules: when each request should be sent, decided without looking at replies.

Times come from a unit-rate renewal process (gaps of mean 1: constant 1, exponential for
Poisson, gamma with shape = burstiness as in vLLM) mapped through the inverse of the
cumulative rate, so a linear ramp bends the same process instead of approximating it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from loadgen.spec import ArrivalSpec


def unit_gap(spec: ArrivalSpec, rng: random.Random) -> float:
    """One gap of the unit-rate process (mean 1)."""
    if spec.kind == "constant":
        return 1.0
    if spec.kind == "poisson":
        return rng.expovariate(1.0)
    if spec.kind == "gamma":
        return rng.gammavariate(spec.burstiness, 1.0 / spec.burstiness)
    raise ValueError(f"arrival.kind {spec.kind!r} has no schedule (closed loop)")


def time_at(spec: ArrivalSpec, rate: float, expected: float) -> float:
    """Seconds after the start at which ``expected`` arrivals are due (inverse cumulative rate)."""
    ramp = spec.ramp_seconds
    if ramp <= 0:
        return expected / rate
    r0 = rate * spec.ramp_from
    during = (r0 + rate) * ramp / 2.0  # arrivals expected during the ramp
    if expected >= during:
        return ramp + (expected - during) / rate
    a = (rate - r0) / (2.0 * ramp)
    if a <= 0:
        return expected / r0
    return (-r0 + math.sqrt(r0 * r0 + 4.0 * a * expected)) / (2.0 * a)


def schedule(spec: ArrivalSpec, rate: float, rng: random.Random, start: float) -> Iterator[float]:
    """Endless monotonic send times from ``start`` (the first one after one gap)."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    expected = 0.0
    while True:
        expected += unit_gap(spec, rng)
        yield start + time_at(spec, rate, expected)


def rate_at(spec: ArrivalSpec, rate: float, elapsed: float) -> float:
    """The target rate ``elapsed`` seconds into the phase (what the samples report)."""
    if spec.ramp_seconds <= 0 or elapsed >= spec.ramp_seconds:
        return rate
    frac = spec.ramp_from + (1.0 - spec.ramp_from) * elapsed / spec.ramp_seconds
    return rate * frac
