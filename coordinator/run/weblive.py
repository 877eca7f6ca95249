"""The LLM figures of ``--web``'s LLM tab, computed from the collector's records as the run goes.

Latencies and output tokens/s are over the last ``window_s`` seconds of the current phase,
counts (requests, errors and retries by class) over the run so far; per workload. Every figure
is the summary's own: the window's records go through
:func:`coordinator.results.summarize.summarize_group`, which applies ``loadgen.metrics``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from coordinator.results.summarize import summarize_group
from coordinator.results.summary import LatencyStats
from coordinator.run.webprotocol import LATENCIES, LiveView, Percentiles, ServerFigures, WorkloadFigures
from loadgen.records import OK, RequestRecord

WINDOW_S = 30.0


@dataclass
class _Totals:
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)


def _percentiles(stats: LatencyStats) -> Percentiles:
    return Percentiles(p50=stats.p50, p90=stats.p90, p99=stats.p99)


class LiveFigures:
    """Fed by the collector thread (:meth:`add`), read by the run's thread (:meth:`view`)."""

    def __init__(self, window_s: float = WINDOW_S, skip: frozenset[str] = frozenset()) -> None:
        self.window_s = window_s
        self.skip = skip  # phases not shown (the pre-flight request)
        self._recent: deque[RequestRecord] = deque()
        self._totals: dict[str, _Totals] = defaultdict(_Totals)
        self._lock = threading.Lock()

    def add(self, records: Sequence[RequestRecord]) -> None:
        with self._lock:
            for rec in records:
                if rec.phase in self.skip:
                    continue
                self._recent.append(rec)
                totals = self._totals[rec.workload]
                totals.requests += 1
                if rec.outcome != OK:
                    totals.errors[rec.outcome] += 1
                for retried in rec.attempts[:-1]:  # the class of each attempt that another followed
                    totals.retries[retried.error or OK] += 1
            self._drop_before(time.monotonic() - self.window_s)

    def _drop_before(self, cutoff: float) -> None:
        while self._recent and self._recent[0].end < cutoff:
            self._recent.popleft()

    def view(
        self, phase: str, phase_started: float, run_started: float, server: ServerFigures | None = None
    ) -> LiveView:
        """The figures now: the window is the last ``window_s`` s, from the phase's start at the earliest."""
        now = time.monotonic()
        since = max(now - self.window_s, phase_started)
        with self._lock:
            self._drop_before(now - self.window_s)
            recent = [r for r in self._recent if r.phase == phase and r.end >= since]
            totals = {name: (t.requests, dict(t.errors), dict(t.retries)) for name, t in self._totals.items()}
        span = max(now - since, 1e-3)
        rows = []
        for workload in sorted(totals):
            requests, errors, retries = totals[workload]
            mine = [r for r in recent if r.workload == workload]
            row = WorkloadFigures(
                workload=workload, requests=requests, errors_by_class=errors, retries_by_class=retries
            )
            if mine:
                group = summarize_group(mine, span)
                latency = {name: _percentiles(getattr(group.latency_ms, name)) for name in LATENCIES}
                row = row.model_copy(
                    update={"window_requests": len(mine), "output_tokens_per_s": group.output_tokens_per_s, **latency}
                )
            rows.append(row)
        return LiveView(t=now - run_started, phase=phase, window_s=span, workloads=rows, server=server)
