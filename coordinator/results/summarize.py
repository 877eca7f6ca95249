"""Exact summaries of a run: numpy over every record, never averages of per-worker percentiles.

Each record's values are computed once (``loadgen.metrics``), into the run's columns
(:mod:`coordinator.results.columns`); each group (its phase, its workload in that phase, the
run, its workload in the run) is a mask over them. What comes out is a
:class:`~coordinator.results.summary.Summary`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from coordinator.results.columns import Mask, RecordColumns, as_columns
from coordinator.results.selfcheck import SelfCheckResult
from coordinator.results.slo import Slo
from coordinator.results.status import RunStatus
from coordinator.results.summary import (
    LATENCY_NOTE,
    SUMMARY_VERSION,
    AnswerLatencyByMetric,
    FailureAwareByMetric,
    FailureAwareStats,
    Goodput,
    GroupSummary,
    GroupWithWorkloads,
    LatencyByMetric,
    LatencyStats,
    PhaseWindow,
    RunInfo,
    SloCheck,
    SloVerdict,
    Summary,
    percentile_field,
)
from loadgen import metrics
from loadgen.records import OK, ErrorClass, RequestRecord

Floats = npt.NDArray[np.float64]
Records = RecordColumns | Iterable[RequestRecord]

_PERCENTILE_FIELDS = tuple(percentile_field(p) for p in metrics.PERCENTILES)


def _finite_ms(values_s: Floats) -> Floats:
    return values_s[np.isfinite(values_s)] * 1000.0


def percentile_stats(values_s: Floats) -> LatencyStats:
    """p50/p90/p95/p99/p99.9, mean, min, max in ms of the finite values (numpy's linear method)."""
    finite = _finite_ms(values_s)
    fields: dict[str, float | int | None] = {"n": int(finite.size)}
    if finite.size == 0:
        fields.update(dict.fromkeys(_PERCENTILE_FIELDS), mean=None, min=None, max=None)
    else:
        qs = np.percentile(finite, list(metrics.PERCENTILES))
        fields.update({name: float(q) for name, q in zip(_PERCENTILE_FIELDS, qs, strict=True)})
        fields.update(mean=float(finite.mean()), min=float(finite.min()), max=float(finite.max()))
    return LatencyStats.model_validate(fields)


def failure_aware_stats(ok_values_s: Floats, failed: int) -> FailureAwareStats:
    """The failure-aware percentiles in ms (``None`` where they reach the failures)."""
    finite = _finite_ms(ok_values_s)  # in ms before the percentiles, as percentile_stats: the same values
    qs = metrics.failure_aware_percentiles(finite, failed)
    fields: dict[str, float | int | None] = {
        name: (q if np.isfinite(q) else None) for name, q in zip(_PERCENTILE_FIELDS, qs, strict=True)
    }
    fields.update(n=int(finite.size) + failed, failed=failed)
    return FailureAwareStats.model_validate(fields)


def summarize_group(records: Records, duration_s: float | None, slo: Slo | None = None) -> GroupSummary:
    """Everything reported for one group of records (a phase, a workload, or the run)."""
    cols = as_columns(records)
    return _group(cols, cols.everything(), duration_s, slo)


def _group(cols: RecordColumns, rows: Mask, duration_s: float | None, slo: Slo | None) -> GroupSummary:
    n = int(rows.sum())
    if duration_s is None or duration_s <= 0:
        duration_s = _span(cols, rows)
    ok_mask = cols.ok[rows]
    values = {name: column[rows] for name, column in cols.values.items()}
    n_ok = int(ok_mask.sum())
    ok_values = {name: cols.itl(rows) if name == "itl" else values[name][ok_mask] for name in metrics.LATENCY_METRICS}
    latency = LatencyByMetric.model_validate({name: percentile_stats(v) for name, v in ok_values.items()})
    answer = AnswerLatencyByMetric.model_validate(
        {
            name: percentile_stats(cols.itl_answer(rows) if name == "itl_answer" else values[name][ok_mask])
            for name in metrics.ANSWER_METRICS
        }
    )
    failed = n - n_ok - cols.outcomes(rows).get(ErrorClass.CANCELLED.value, 0)
    failure_aware = FailureAwareByMetric.model_validate(
        {name: failure_aware_stats(ok_values[name], failed) for name in metrics.FAILURE_AWARE_METRICS}
    )
    good = ok_mask if slo is None else slo.rule().good_all(ok_mask, values)
    n_good = int(good.sum())
    out_tokens = float(cols.output_tokens[rows][ok_mask].sum())
    reasoning_tokens = int(cols.reasoning_tokens[rows][ok_mask].sum())
    attempts = cols.attempts[rows]
    per_s: Callable[[float], float | None] = (lambda x: x / duration_s) if duration_s else (lambda x: None)
    return GroupSummary(
        count=n,
        ok=n_ok,
        errors=n - n_ok,
        errors_by_class={k: v for k, v in cols.outcomes(rows).items() if k != OK},
        attempts_by_class=cols.attempt_classes(rows),
        retries=int(np.maximum(attempts - 1, 0).sum()),
        attempts=int(attempts.sum()),
        requests_with_retries=int((attempts > 1).sum()),
        duration_s=duration_s,
        requests_per_s=per_s(n),
        ok_requests_per_s=per_s(n_ok),
        output_tokens=int(out_tokens),
        prompt_tokens=int(cols.prompt_tokens[rows][ok_mask].sum()),
        output_tokens_per_s=per_s(out_tokens),
        reasoning_tokens=reasoning_tokens,
        answer_tokens=max(0, int(out_tokens) - reasoning_tokens),
        goodput=Goodput(requests=n_good, share=(n_good / n) if n else None, per_s=per_s(n_good)),
        latency_ms=latency,
        latency_ms_answer=answer,
        latency_ms_failure_aware=failure_aware,
        slo=None if slo is None else slo_verdict(ok_values, slo),
    )


def slo_verdict(ok_values: dict[str, Floats], slo: Slo) -> SloVerdict:
    """Whether each SLO holds at its percentile of the successful requests' values (s; ``None``: no data).

    The percentile is computed as :func:`percentile_stats` computes its own, so at p99 the
    verdict's value is the p99 in ``latency_ms``; any other declared percentile is exact too.
    """
    checks = {}
    for name, limit in slo.limits_ms():
        finite = _finite_ms(ok_values[name])
        value = float(np.percentile(finite, slo.percentile)) if finite.size else None
        checks[name] = SloCheck(
            limit_ms=limit,
            percentile=slo.percentile,
            value_ms=value,
            met=None if value is None else value <= limit,
        )
    met = [c.met for c in checks.values() if c.met is not None]
    return SloVerdict(checks=checks, met=all(met) if met else None)


def _span(cols: RecordColumns, rows: Mask) -> float | None:
    if not rows.any():
        return None
    start = float(cols.scheduled[rows].min())
    end = float(cols.end[rows].max())
    return max(end - start, 1e-9)


def _with_workloads(cols: RecordColumns, rows: Mask, duration_s: float | None, slo: Slo | None) -> GroupWithWorkloads:
    """A group's summary with one summary per workload under ``workloads`` (same duration)."""
    entry = _group(cols, rows, duration_s, slo)
    workloads = {w: _group(cols, sub, duration_s, slo) for w, sub in cols.workloads_in(rows)}
    return GroupWithWorkloads(**dict(entry), workloads=workloads)


def summarize(
    records: Records,
    phases: Sequence[PhaseWindow] = (),
    slo: Slo | None = None,
    *,
    partial: bool = False,
    partial_reason: str | None = None,
    selfcheck: SelfCheckResult | None = None,
    run: RunInfo | None = None,
    unmeasured: frozenset[str] = frozenset(),
) -> Summary:
    """The run's summary: overall, per phase, and per phase and workload.

    ``records``: the run's columns (:func:`~coordinator.results.columns.read_columns`), or
    records in hand. Phases in ``unmeasured`` (warm-ups) are summarised on their own but left
    out of ``all``. Without ``run``, the run's part holds only the phases and the number of records.
    """
    cols = as_columns(records)
    present = set(cols.phases)
    windows = {w.name: w for w in phases}
    order = [w.name for w in phases if w.name in present] + sorted(present - set(windows))
    phase_out: dict[str, GroupWithWorkloads] = {}
    total_duration = 0.0
    for name in order:
        rows = cols.of_phase(name)
        win = windows.get(name)
        duration = (win.end - win.start) if win is not None and win.end is not None else None
        if name not in unmeasured:
            total_duration += duration or (_span(cols, rows) or 0.0)
        phase_out[name] = _with_workloads(cols, rows, duration, slo)
    measured = ~cols.of_phases(unmeasured)
    overall = _with_workloads(cols, measured, total_duration or None, slo)
    return Summary(
        version=SUMMARY_VERSION,
        run=run if run is not None else RunInfo(phases=tuple(phases), records=cols.n),
        status=RunStatus.PARTIAL if partial else RunStatus.COMPLETE,
        partial=partial,
        partial_reason=partial_reason,
        valid=True if selfcheck is None else selfcheck.valid,
        invalid_reasons=() if selfcheck is None else selfcheck.reasons,
        selfcheck=selfcheck,
        latency_note=LATENCY_NOTE,
        slo=slo,
        phases_order=tuple(order),
        unmeasured_phases=tuple(sorted(unmeasured & set(order))),
        all=overall,
        phases=phase_out,
    )
