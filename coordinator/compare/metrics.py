"""What a comparison compares: each metric's statistics, its direction, and the limits it is judged by.

Names are finishline's (``coordinator.baselines.model``). A latency is compared at each
percentile both sides have; a rate (``*_per_s``) and ``error_rate`` at their ``mean``; a
cold-start metric (``cold_start.<step>``, ``cold_start.cold_ttft``, ...) at its median, or at
its mean when that is all there is (``cold_start.cold_penalty``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    LOWER = "lower"  # lower is better: latencies, error rates, cold starts
    HIGHER = "higher"  # higher is better: throughput


class Kind(StrEnum):
    LATENCY = "latency"  # per request (or token) values, in ms, at percentiles
    RATE = "rate"  # per second over the step
    SHARE = "share"  # a share of requests
    COLD_START = "cold_start"  # a few values, one per container start, in ms


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    kind: Kind
    direction: Direction
    unit: str  # how it is printed: ms, tok/s, req/s, %

    @property
    def stats(self) -> tuple[str, ...]:
        return LATENCY_STATS if self.kind is Kind.LATENCY else ("mean",)


LATENCY_STATS: tuple[str, ...] = ("p50", "p90", "p95", "p99")
COLD_START = "cold_start"

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("ttft", Kind.LATENCY, Direction.LOWER, "ms"),
        Metric("tpot", Kind.LATENCY, Direction.LOWER, "ms"),
        Metric("itl", Kind.LATENCY, Direction.LOWER, "ms"),
        Metric("e2e", Kind.LATENCY, Direction.LOWER, "ms"),
        Metric("ttfot", Kind.LATENCY, Direction.LOWER, "ms"),  # a reasoning model's first answer token
        # failed requests counted as infinitely slow (docs/metrics.md): a run that fails fast looks no faster
        Metric("ttft_failure_aware", Kind.LATENCY, Direction.LOWER, "ms"),
        Metric("tpot_failure_aware", Kind.LATENCY, Direction.LOWER, "ms"),
        Metric("e2e_failure_aware", Kind.LATENCY, Direction.LOWER, "ms"),
        Metric("output_tokens_per_s", Kind.RATE, Direction.HIGHER, "tok/s"),
        Metric("requests_per_s", Kind.RATE, Direction.HIGHER, "req/s"),
        Metric("goodput_per_s", Kind.RATE, Direction.HIGHER, "req/s"),
        Metric("error_rate", Kind.SHARE, Direction.LOWER, "%"),
    )
}
LATENCIES: tuple[str, ...] = tuple(n for n, m in METRICS.items() if m.kind is Kind.LATENCY)
FAILURE_AWARE: tuple[str, ...] = tuple(n for n in LATENCIES if n.endswith("_failure_aware"))  # summaries only
RATES: tuple[str, ...] = tuple(n for n, m in METRICS.items() if m.kind is Kind.RATE)


def metric(name: str) -> Metric:
    """The metric of a name (``error_rate.timeout`` is an error rate; ``cold_start.ready`` a cold start)."""
    if name in METRICS:
        return METRICS[name]
    family = name.split(".", 1)[0]
    if family == COLD_START:
        return Metric(name, Kind.COLD_START, Direction.LOWER, "ms")
    if family == "error_rate":
        return Metric(name, Kind.SHARE, Direction.LOWER, "%")
    raise KeyError(name)


def threshold_keys() -> list[str]:
    """Every key a thresholds file may set: a metric, a metric at a statistic, the cold-start family."""
    out: list[str] = []
    for name, m in METRICS.items():
        out.append(name)
        if m.kind is Kind.LATENCY:
            out += [f"{name}.{stat}" for stat in LATENCY_STATS]
    return [*out, COLD_START, f"{COLD_START}.<step>"]
