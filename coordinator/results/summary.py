"""Exact summaries of a run: numpy over every record, never averages of per-worker percentiles.

Latency percentiles are computed over *successful* requests only (a failed request has no
meaningful TTFT), on the final attempt, with the definitions of ``loadgen.metrics``.
Counts, errors, retries and goodput cover every request. Times in the summary are
milliseconds; rates are per second of the phase's measured duration.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from loadgen import metrics
from loadgen.records import OK, RequestRecord

SUMMARY_VERSION = 1
# The latencies reported per group, all over successful requests (ms).
SUMMARY_LATENCIES: tuple[str, ...] = metrics.LATENCY_METRICS
ALL = "all"


@dataclass(frozen=True, slots=True)
class SloSpec:
    """Thresholds a request must meet to count as goodput; the percentile is for the verdict."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None
    percentile: float = 99.0

    def limits(self) -> list[tuple[str, float]]:
        """``(metric, limit_ms)`` of every threshold declared (ttft, tpot, e2e)."""
        pairs = (("ttft", self.ttft_ms), ("tpot", self.tpot_ms), ("e2e", self.e2e_ms))
        return [(name, limit) for name, limit in pairs if limit is not None]


@dataclass(frozen=True, slots=True)
class PhaseWindow:
    """When a phase ran (monotonic seconds), as the master driver logged it."""

    name: str
    start: float
    end: float | None = None


@dataclass(slots=True)
class _Columns:
    """Per-request values of one group as numpy arrays, built once."""

    ok: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)  # per-request metric (s), NaN if undefined
    itl: np.ndarray = field(default_factory=lambda: np.empty(0))
    output_tokens: np.ndarray = field(default_factory=lambda: np.empty(0))
    prompt_tokens: np.ndarray = field(default_factory=lambda: np.empty(0))


def percentile_stats(values_s: np.ndarray) -> dict[str, float | int | None]:
    """p50/p90/p95/p99/p99.9, mean, min, max in ms of the finite values (numpy's linear method)."""
    finite = values_s[np.isfinite(values_s)] * 1000.0
    out: dict[str, float | int | None] = {"n": int(finite.size)}
    if finite.size == 0:
        for p in metrics.PERCENTILES:
            out[_pkey(p)] = None
        out.update(mean=None, min=None, max=None)
        return out
    qs = np.percentile(finite, list(metrics.PERCENTILES))
    for p, q in zip(metrics.PERCENTILES, qs, strict=True):
        out[_pkey(p)] = float(q)
    out.update(mean=float(finite.mean()), min=float(finite.min()), max=float(finite.max()))
    return out


def _pkey(p: float) -> str:
    return f"p{p:g}"


_NAMES = tuple(name for name in SUMMARY_LATENCIES if name != "itl")
# Per-record values, computed once per record however many groups it belongs to.
_Row = tuple[tuple[float, ...], np.ndarray, float, float]
Cache = dict[int, _Row]


def _row(rec: RequestRecord) -> _Row:
    if not rec.attempts:
        return (tuple(np.nan for _ in _NAMES), np.empty(0), 0.0, 0.0)
    vals = metrics.request_values(rec)
    row = tuple(np.nan if vals[name] is None else float(vals[name]) for name in _NAMES)  # type: ignore[arg-type]
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


def _good(cols: _Columns, slo: SloSpec | None) -> np.ndarray:
    """Which requests meet every SLO threshold (failed requests never do)."""
    good = cols.ok.copy()
    if slo is None:
        return good
    for name, limit in slo.limits():
        vals = cols.values[name] * 1000.0
        # an undefined TPOT (one output token) cannot violate the TPOT SLO
        meets = np.where(np.isnan(vals), name == "tpot", vals <= limit)
        good &= meets
    return good


def summarize_group(
    records: Sequence[RequestRecord],
    duration_s: float | None,
    slo: SloSpec | None = None,
    cache: Cache | None = None,
) -> dict[str, Any]:
    """Everything reported for one group of records (a phase, a workload, or the run)."""
    cols = _columns(records, cache)
    n = len(records)
    outcomes = Counter(r.outcome for r in records)
    errors = {k: v for k, v in sorted(outcomes.items()) if k != OK}
    if duration_s is None or duration_s <= 0:
        duration_s = _span(records)
    ok_mask = cols.ok
    latency: dict[str, Any] = {}
    for name in SUMMARY_LATENCIES:
        arr = cols.itl if name == "itl" else cols.values[name][ok_mask]
        latency[name] = percentile_stats(arr)
    good = _good(cols, slo)
    n_good = int(good.sum())
    out_tokens = float(cols.output_tokens[ok_mask].sum())
    per_s = (lambda x: x / duration_s) if duration_s else (lambda x: None)
    result: dict[str, Any] = {
        "count": n,
        "ok": int(ok_mask.sum()),
        "errors": int(n - ok_mask.sum()),
        "errors_by_class": errors,
        "retries": int(sum(r.retries for r in records)),
        "attempts": int(sum(len(r.attempts) for r in records)),
        "requests_with_retries": int(sum(1 for r in records if r.retries)),
        "duration_s": duration_s,
        "requests_per_s": per_s(n),
        "ok_requests_per_s": per_s(int(ok_mask.sum())),
        "output_tokens": int(out_tokens),
        "prompt_tokens": int(cols.prompt_tokens[ok_mask].sum()),
        "output_tokens_per_s": per_s(out_tokens),
        "goodput": {
            "requests": n_good,
            "share": (n_good / n) if n else None,
            "per_s": per_s(n_good),
        },
        "latency_ms": latency,
    }
    if slo is not None:
        result["slo"] = slo_verdict(latency, slo)
    return result


def slo_verdict(latency: dict[str, Any], slo: SloSpec) -> dict[str, Any]:
    """Whether each SLO holds at its percentile (``None`` when there is no data)."""
    key = _pkey(slo.percentile)
    checks: dict[str, Any] = {}
    for name, limit in slo.limits():
        stats = latency[name]
        value = stats.get(key)
        if value is None and stats["n"]:
            value = float(np.nan)
        checks[name] = {
            "limit_ms": limit,
            "percentile": slo.percentile,
            "value_ms": value,
            "met": None if value is None else bool(value <= limit),
        }
    met = [c["met"] for c in checks.values() if c["met"] is not None]
    return {"checks": checks, "met": (all(met) if met else None)}


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
    records: Sequence[RequestRecord], duration_s: float | None, slo: SloSpec | None, cache: Cache
) -> dict[str, Any]:
    """A group's summary with one summary per workload under ``workloads`` (same duration)."""
    entry = summarize_group(records, duration_s, slo, cache)
    by_workload = _group_by(records, "workload")
    entry["workloads"] = {w: summarize_group(rs, duration_s, slo, cache) for w, rs in sorted(by_workload.items())}
    return entry


def summarize(
    records: Iterable[RequestRecord],
    phases: Sequence[PhaseWindow] = (),
    slo: SloSpec | None = None,
    *,
    partial: bool = False,
    partial_reason: str | None = None,
    selfcheck: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
    unmeasured: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The run's summary: overall, per phase, and per phase and workload.

    Phases in ``unmeasured`` (warm-ups) are summarised on their own but left out of ``all``.
    """
    recs = list(records)
    cache: Cache = {}
    by_phase = _group_by(recs, "phase")
    windows = {w.name: w for w in phases}
    order = [w.name for w in phases if w.name in by_phase] + sorted(set(by_phase) - set(windows))
    phase_out: dict[str, Any] = {}
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
    valid = True if selfcheck is None else bool(selfcheck.get("valid", True))
    return {
        "version": SUMMARY_VERSION,
        "run": run or {},
        "status": "partial" if partial else "complete",
        "partial": partial,
        "partial_reason": partial_reason,
        "valid": valid,
        "invalid_reasons": [] if selfcheck is None else list(selfcheck.get("reasons", [])),
        "selfcheck": selfcheck,
        "latency_note": "latency percentiles are over successful requests only (final attempt)",
        "slo": None if slo is None else asdict(slo),
        "phases_order": order,
        "unmeasured_phases": sorted(unmeasured & set(order)),
        ALL: overall,
        "phases": phase_out,
    }
