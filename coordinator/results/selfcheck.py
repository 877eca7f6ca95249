"""Self-check: was the load generator, not the server, the bottleneck?

A saturated client measures its own slowness: a busy CPU or a blocked gevent loop delays
reading the stream (inflating TTFT/ITL) and sending (coordinated omission). The workers
sample CPU and loop lag every second; records carry dispatch delay. When any of them is
past its limit the run's result is marked invalid with the reason, never silently kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from coordinator.results.columns import RecordColumns, as_columns
from loadgen.records import RequestRecord
from loadgen.samples import WorkerSample


class SelfCheckLimits(BaseModel):
    """Limits past which the client counts as saturated (scenario section ``selfcheck``)."""

    model_config = ConfigDict(extra="forbid")

    cpu_percent: float = Field(90.0, gt=0, le=100, description="p90 of a worker's CPU samples above this = saturated")
    loop_lag_ms: float = Field(50.0, gt=0, description="p99 of gevent loop lag samples above this = saturated")
    dispatch_delay_ms: float = Field(50.0, gt=0, description="p99 of dispatch delay above this = sending late")
    min_samples: int = Field(3, ge=1, description="fewer samples than this per worker are not judged")


class WorkerHealth(BaseModel):
    """One worker's samples, as judged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    samples: int = Field(ge=0)
    cpu_p90: float
    cpu_max: float
    loop_lag_p99_ms: float
    loop_lag_max_ms: float


class DispatchDelay(BaseModel):
    """How late the client sent (first attempt sent - scheduled) over every request, in ms."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    p50_ms: float
    p99_ms: float
    max_ms: float


class SelfCheckResult(BaseModel):
    """The verdict with its evidence (``summary.json`` ``selfcheck``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    valid: bool = Field(description="no limit was passed")
    reasons: tuple[str, ...] = Field(description="each limit passed, with what to do about it")
    limits: SelfCheckLimits
    workers: dict[str, WorkerHealth]
    dispatch_delay: DispatchDelay | None = Field(description="None without requests")


def evaluate(
    samples: Sequence[WorkerSample], records: RecordColumns | Iterable[RequestRecord], limits: SelfCheckLimits
) -> SelfCheckResult:
    """The verdict with its figures; ``records``: the run's columns, or records in hand."""
    reasons: list[str] = []
    by_worker: dict[str, list[WorkerSample]] = {}
    for s in samples:
        by_worker.setdefault(s.worker, []).append(s)
    workers: dict[str, WorkerHealth] = {}
    for worker, rows in sorted(by_worker.items()):
        # every worker here has at least one sample
        cpu = np.array([r.cpu_percent for r in rows], dtype=float)
        lag = np.array([r.loop_lag_ms for r in rows], dtype=float)
        cpu_p90, lag_p99 = float(np.percentile(cpu, 90)), float(np.percentile(lag, 99))
        workers[worker] = WorkerHealth(
            samples=len(rows),
            cpu_p90=cpu_p90,
            cpu_max=float(cpu.max()),
            loop_lag_p99_ms=lag_p99,
            loop_lag_max_ms=float(lag.max()),
        )
        if len(rows) < limits.min_samples:
            continue
        if cpu_p90 > limits.cpu_percent:
            reasons.append(
                f"worker {worker} CPU p90 {cpu_p90:.0f}% > {limits.cpu_percent:.0f}%: add workers or lower the load"
            )
        if lag_p99 > limits.loop_lag_ms:
            reasons.append(
                f"worker {worker} gevent loop lag p99 {lag_p99:.0f} ms > "
                f"{limits.loop_lag_ms:.0f} ms: add workers or lower the load"
            )
    cols = as_columns(records)
    delays = cols.values["dispatch_delay"][cols.attempts > 0] * 1000.0  # loadgen.metrics.dispatch_delay
    dispatch = None
    if delays.size:
        dispatch = DispatchDelay(
            p50_ms=float(np.percentile(delays, 50)),
            p99_ms=float(np.percentile(delays, 99)),
            max_ms=float(delays.max()),
        )
        if delays.size >= 20 and dispatch.p99_ms > limits.dispatch_delay_ms:
            reasons.append(
                f"dispatch delay p99 {dispatch.p99_ms:.0f} ms > {limits.dispatch_delay_ms:.0f} ms: "
                "the client sent late (coordinated omission); add workers or lower the rate"
            )
    return SelfCheckResult(
        valid=not reasons, reasons=tuple(reasons), limits=limits, workers=workers, dispatch_delay=dispatch
    )
