"""Exact summaries of a run: numpy over every record, never averages of per-worker percentiles.

Each record's values are computed once (``loadgen.metrics``), however many groups it belongs
to (its phase, its workload in that phase, the run, its workload in the run); each group is
then a few numpy columns. What comes out is a :class:`~coordinator.results.summary.Summary`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from coordinator.results.selfcheck import SelfCheckResult
from coordinator.results.slo import Slo
from coordinator.results.status import RunStatus
from coordinator.results.summary import (
    LATENCY_NOTE,
    SUMMARY_VERSION,
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
from loadgen.records import OK, RequestRecord

Floats = npt.NDArray[np.float64]


@dataclass(slots=True)
class _Columns:
    """Per-request values of one group as numpy arrays, built once."""

    ok: npt.NDArray[np.bool_]
    values: dict[str, Floats] = field(default_factory=dict)  # per-request metric (s), NaN if undefined
    itl: Floats = field(default_factory=lambda: np.empty(0))
    output_tokens: Floats = field(default_factory=lambda: np.empty(0))
    prompt_tokens: Floats = field(default_factory=lambda: np.empty(0))


_PERCENTILE_FIELDS = tuple(percentile_field(p) for p in metrics.PERCENTILES)
_NAMES = tuple(name for name in metrics.LATENCY_METRICS if name != "itl")
# Per-record values, computed once per record however many groups it belongs to.
_Row = tuple[tuple[float, ...], Floats, float, float]
Cache = dict[int, _Row]


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


def _row(rec: RequestRecord) -> _Row:
    if not rec.attempts:
        return (tuple(np.nan for _ in _NAMES), np.empty(0), 0.0, 0.0)
    vals = metrics.request_values(rec)
    row = tuple(np.nan if (v := vals[name]) is None else float(v) for name in _NAMES)
    itl = np.fromiter(metrics.itl(rec.final), dtype=float) if rec.ok else np.empty(0)
    return (row, itl, float(metrics.output_tokens(rec)), float(metrics.prompt_tokens(rec)))


def _columns(records: Sequence[RequestRecord], cache: Cache | None = None) -> _Columns:
    cache = {} if cache is None else cache
    n = len(records)
    ok = np.fromiter((r.ok for r in records), dtype=bool, count=n)
    rows = []
    for rec in records:
        row = cache.get(id(rec))
        if row is None:
            row = cache[id(rec)] = _row(rec)
        rows.append(row)
    table = np.array([r[0] for r in rows], dtype=float).reshape(n, len(_NAMES))
    values = {name: table[:, i] for i, name in enumerate(_NAMES)}
    itl = np.concatenate([r[1] for r in rows]) if rows else np.empty(0)
    out_tok = np.array([r[2] for r in rows], dtype=float)
    in_tok = np.array([r[3] for r in rows], dtype=float)
    return _Columns(ok=ok, values=values, itl=itl, output_tokens=out_tok, prompt_tokens=in_tok)


def summarize_group(
    records: Sequence[RequestRecord],
    duration_s: float | None,
    slo: Slo | None = None,
    cache: Cache | None = None,
) -> GroupSummary:
    """Everything reported for one group of records (a phase, a workload, or the run)."""
    cols = _columns(records, cache)
    n = len(records)
    outcomes = Counter(r.outcome for r in records)
    if duration_s is None or duration_s <= 0:
        duration_s = _span(records)
    ok_mask = cols.ok
    n_ok = int(ok_mask.sum())
    ok_values = {name: cols.itl if name == "itl" else cols.values[name][ok_mask] for name in metrics.LATENCY_METRICS}
    latency = LatencyByMetric.model_validate({name: percentile_stats(v) for name, v in ok_values.items()})
    good = ok_mask if slo is None else slo.rule().good_all(ok_mask, cols.values)
    n_good = int(good.sum())
    out_tokens = float(cols.output_tokens[ok_mask].sum())
    per_s: Callable[[float], float | None] = (lambda x: x / duration_s) if duration_s else (lambda x: None)
    return GroupSummary(
        count=n,
        ok=n_ok,
        errors=n - n_ok,
        errors_by_class={k: v for k, v in sorted(outcomes.items()) if k != OK},
        retries=sum(r.retries for r in records),
        attempts=sum(len(r.attempts) for r in records),
        requests_with_retries=sum(1 for r in records if r.retries),
        duration_s=duration_s,
        requests_per_s=per_s(n),
        ok_requests_per_s=per_s(n_ok),
        output_tokens=int(out_tokens),
        prompt_tokens=int(cols.prompt_tokens[ok_mask].sum()),
        output_tokens_per_s=per_s(out_tokens),
        goodput=Goodput(requests=n_good, share=(n_good / n) if n else None, per_s=per_s(n_good)),
        latency_ms=latency,
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


def _span(records: Sequence[RequestRecord]) -> float | None:
    if not records:
        return None
    start = min(r.scheduled for r in records)
    end = max(r.end for r in records)
    return max(end - start, 1e-9)


def _group_by(records: Iterable[RequestRecord], attr: str) -> dict[str, list[RequestRecord]]:
    groups: dict[str, list[RequestRecord]] = {}
    for rec in records:
        groups.setdefault(getattr(rec, attr), []).append(rec)
    return groups


def _with_workloads(
    records: Sequence[RequestRecord], duration_s: float | None, slo: Slo | None, cache: Cache
) -> GroupWithWorkloads:
    """A group's summary with one summary per workload under ``workloads`` (same duration)."""
    entry = summarize_group(records, duration_s, slo, cache)
    by_workload = _group_by(records, "workload")
    workloads = {w: summarize_group(rs, duration_s, slo, cache) for w, rs in sorted(by_workload.items())}
    return GroupWithWorkloads(**dict(entry), workloads=workloads)


def summarize(
    records: Iterable[RequestRecord],
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

    Phases in ``unmeasured`` (warm-ups) are summarised on their own but left out of ``all``.
    Without ``run``, the run's part holds only the phases and the number of records.
    """
    recs = list(records)
    cache: Cache = {}
    by_phase = _group_by(recs, "phase")
    windows = {w.name: w for w in phases}
    order = [w.name for w in phases if w.name in by_phase] + sorted(set(by_phase) - set(windows))
    phase_out: dict[str, GroupWithWorkloads] = {}
    total_duration = 0.0
    for name in order:
        group = by_phase[name]
        win = windows.get(name)
        duration = (win.end - win.start) if win is not None and win.end is not None else None
        if name not in unmeasured:
            total_duration += duration or (_span(group) or 0.0)
        phase_out[name] = _with_workloads(group, duration, slo, cache)
    measured = [r for r in recs if r.phase not in unmeasured]
    overall = _with_workloads(measured, total_duration or None, slo, cache)
    return Summary(
        version=SUMMARY_VERSION,
        run=run if run is not None else RunInfo(phases=tuple(phases), records=len(recs)),
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
