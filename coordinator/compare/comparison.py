"""A comparison, assembled: steps matched, each metric's figures, interval and verdict, and what to warn.

Each side's figures are the exact ones of its steps (the summary's percentiles, rates over the
step's duration); per-request values only give the interval. A metric is compared at the
statistics both sides have; across tools, only where both sides define it as finishline does
(each figure carries its provenance).
"""

from __future__ import annotations

import math

from coordinator.baselines.model import Baseline, LoadKind, MetricStats, Step, Tool
from coordinator.compare import intervals
from coordinator.compare.bootstrap import Bootstrap, Interval, enough_tail
from coordinator.compare.matching import Match, match_steps
from coordinator.compare.metrics import FAILURE_AWARE, LATENCIES, LATENCY_STATS, RATES, Metric, metric
from coordinator.compare.result import (
    Comparison,
    Method,
    MetricComparison,
    SideInfo,
    StepComparison,
    Verdict,
)
from coordinator.compare.sides import Side
from coordinator.compare.thresholds import Thresholds
from coordinator.compare.verdict import judge
from loadgen.errors import UserError

TOO_FEW = "too few values beyond this percentile on a side to judge it"


def _row(
    m: Metric,
    stat: str,
    base: float | None,
    current: float | None,
    thresholds: Thresholds,
    method: Method,
    interval: Interval | None,
    provenance: tuple[MetricStats | None, MetricStats | None] = (None, None),
    note: str | None = None,
    unjudged: bool = False,
) -> MetricComparison:
    limit = thresholds.limit(m.name, stat)
    delta = None if base is None or current is None else (0.0 if base == current else current - base)  # inf == inf
    relative = None if delta is None or not base else delta / abs(base)
    if delta is None or base is None or unjudged:
        beyond, significant, verdict = False, None, Verdict.UNJUDGED
    else:
        judged = judge(m.direction, base, delta, limit, interval)
        beyond, significant, verdict = judged.beyond_threshold, judged.significant, judged.verdict
    pb, pc = provenance
    return MetricComparison(
        metric=m.name,
        stat=stat,
        unit=m.unit,
        direction=m.direction.value,
        baseline=base,
        current=current,
        delta=delta,
        relative=relative,
        ci_low=None if interval is None else interval.low,
        ci_high=None if interval is None else interval.high,
        method=method,
        threshold=limit.describe(m.unit),
        beyond_threshold=beyond,
        significant=significant,
        verdict=verdict,
        provenance_baseline=None if pb is None else pb.provenance,
        provenance_current=None if pc is None else pc.provenance,
        note=note,
    )


class _StepComparer:
    def __init__(self, match: Match, base: Side, current: Side, thresholds: Thresholds) -> None:
        self.match, self.thresholds = match, thresholds
        self.b_step, self.c_step = match.baseline, match.current
        self.b_samples, self.c_samples = base.samples_of(match.baseline), current.samples_of(match.current)
        self.base, self.current = base, current
        self.boot = Bootstrap(thresholds.replicates, thresholds.confidence, thresholds.seed)

    @property
    def resampled(self) -> bool:
        return self.b_samples is not None and self.c_samples is not None

    @property
    def closed_loop(self) -> bool:
        """Both steps ran a fixed number of users."""
        closed = (LoadKind.CONCURRENCY, LoadKind.SYNCHRONOUS)
        return all(s.load is not None and s.load.kind in closed for s in (self.b_step, self.c_step))

    @property
    def in_flight(self) -> tuple[int, int]:
        """Each side's requests in flight together, where the load says (a closed loop's users)."""

        def users(step: Step) -> int:
            load = step.load
            if load is not None and load.kind is LoadKind.CONCURRENCY and load.value:
                return max(int(load.value), 1)
            return 1

        return users(self.b_step), users(self.c_step)

    def _stats(self, name: str) -> tuple[MetricStats, MetricStats] | None:
        b, c = self.b_step.metrics.get(name), self.c_step.metrics.get(name)
        return None if b is None or c is None else (b, c)

    def _latency_intervals(self, name: str, stats: list[str], points: list[float]) -> list[Interval | None] | None:
        """Each statistic's bootstrap interval, or None for a point comparison (a side without samples)."""
        if self.b_samples is None or self.c_samples is None or not stats:
            return None
        b_values, c_values = self.b_samples.latency(name), self.c_samples.latency(name)
        if b_values is None or c_values is None:  # not per request (failure-aware percentiles): a point comparison
            return None
        blocks = (
            intervals.blocks_of(self.b_samples, self.in_flight[0]),
            intervals.blocks_of(self.c_samples, self.in_flight[1]),
        )
        return intervals.latency(self.boot, b_values, c_values, stats, points, blocks)

    def latencies(self) -> list[MetricComparison]:
        out: list[MetricComparison] = []
        for name in LATENCIES:
            pair = self._stats(name)
            if pair is None:
                continue
            b, c = pair
            stats = [s for s in LATENCY_STATS if b.at(s) is not None and c.at(s) is not None]
            points = [float(c.at(s) or 0.0) - float(b.at(s) or 0.0) for s in stats]
            found = self._latency_intervals(name, stats, points)
            for i, stat in enumerate(stats):
                if found is None:  # a point comparison; a tail is judged only if each summary has values beyond it
                    interval, method = None, Method.POINT
                    few = any(s.n is not None and not _enough(s.n, stat) for s in pair)
                else:
                    interval, method = found[i], Method.BOOTSTRAP
                    few = interval is None
                row = _row(
                    metric(name),
                    stat,
                    b.at(stat),
                    c.at(stat),
                    self.thresholds,
                    method,
                    interval,
                    pair,
                    note=TOO_FEW if few else None,
                    unjudged=few,
                )
                if name in FAILURE_AWARE:
                    row = _failure_aware(row)
                out.append(row)
        return out

    def rates(self) -> list[MetricComparison]:
        pairs = {name: pair for name in RATES if (pair := self._stats(name)) is not None}
        values = {name: (b.at("mean"), c.at("mean")) for name, (b, c) in pairs.items()}
        points = {n: c - b for n, (b, c) in values.items() if b is not None and c is not None}
        found: dict[str, Interval] = {}
        if self.b_samples is not None and self.c_samples is not None:
            found = intervals.rates(
                self.boot, self.b_samples, self.c_samples, points, closed=self.closed_loop, in_flight=self.in_flight
            )
        out = []
        for name, pair in pairs.items():
            b, c = values[name]
            interval = found.get(name)
            method = Method.BOOTSTRAP if interval is not None else Method.POINT
            out.append(_row(metric(name), "mean", b, c, self.thresholds, method, interval, pair))
        return out

    def errors(self) -> list[MetricComparison]:
        b_step, c_step = self.b_step, self.c_step
        out: list[MetricComparison] = []
        n = (b_step.requests, c_step.requests)
        if not n[0] or not n[1]:
            return out
        confidence = self.thresholds.confidence
        pair = self._stats("error_rate")
        b_rate, c_rate = b_step.errors / n[0], c_step.errors / n[1]
        interval: Interval | None
        if self.b_samples is not None and self.c_samples is not None:
            interval, method = (
                intervals.error_rate(self.boot, self.b_samples, self.c_samples, c_rate - b_rate, self.in_flight),
                Method.BOOTSTRAP,
            )
        else:
            interval, method = intervals.proportions((b_step.errors, c_step.errors), n, confidence), Method.PROPORTIONS
        out.append(
            _row(metric("error_rate"), "mean", b_rate, c_rate, self.thresholds, method, interval, pair or (None, None))
        )
        for cls in sorted(set(b_step.errors_by_class) | set(c_step.errors_by_class)):
            e = (b_step.errors_by_class.get(cls, 0), c_step.errors_by_class.get(cls, 0))
            out.append(
                _row(
                    metric(f"error_rate.{cls}"),
                    "mean",
                    e[0] / n[0],
                    e[1] / n[1],
                    self.thresholds,
                    Method.PROPORTIONS,
                    intervals.proportions(e, n, confidence),
                )
            )
        return out

    def cold_starts(self) -> list[MetricComparison]:
        out = []
        names = sorted(k for k in self.c_step.metrics if k.startswith("cold_start.") and k in self.b_step.metrics)
        for name in names:
            b, c = self.b_step.metrics[name], self.c_step.metrics[name]
            stat = "p50" if b.p50 is not None and c.p50 is not None else "mean"
            bv, cv = b.at(stat), c.at(stat)
            interval = None
            b_values, c_values = self.base.cold_starts.get(name), self.current.cold_starts.get(name)
            if stat == "p50" and b_values is not None and c_values is not None and bv is not None and cv is not None:
                interval = intervals.median(self.boot, b_values, c_values, cv - bv)
            method = Method.BOOTSTRAP if interval is not None else Method.POINT
            out.append(_row(metric(name), stat, bv, cv, self.thresholds, method, interval, (b, c)))
        return out

    def compare(self) -> StepComparison:
        if self.c_step.load is not None and self.c_step.load.kind.value == "cold_start":
            rows = self.cold_starts()
        else:
            rows = self.latencies() + self.rates() + self.errors() + self.cold_starts()
        return StepComparison(
            current_step=self.c_step.name,
            baseline_step=self.b_step.name,
            workload=self.c_step.workload,
            matched_by=self.match.by.value,
            match=self.match.label,
            metrics=rows,
        )


FAILURE_AWARE_NOTE = "finite changes are judged by the success-only percentile and the error rate, with their intervals"


def _failure_aware(row: MetricComparison) -> MetricComparison:
    """A failure-aware percentile has no interval of its own (summaries only): it decides only when
    one side's percentile reached the failures and the other's did not; a finite change shows in
    the success-only percentile and the error rate, which have intervals."""
    b, c = row.baseline, row.current
    if b is None or c is None or math.isinf(b) != math.isinf(c):
        return row
    return row.model_copy(update={"verdict": Verdict.SAME, "beyond_threshold": False, "note": FAILURE_AWARE_NOTE})


def _enough(n: int, stat: str) -> bool:
    return enough_tail(n, float(stat.removeprefix("p")))


def _info(side: Side) -> SideInfo:
    b = side.baseline
    return SideInfo(
        label=side.label,
        tool=b.tool,
        tool_version=b.tool_version,
        source=b.source,
        target=b.target.label or b.target.kind,
    )


def _metric_names(baseline: Baseline) -> dict[str, MetricStats]:
    out: dict[str, MetricStats] = {}
    for step in baseline.steps:
        for name, stats in step.metrics.items():
            out.setdefault(name.split(".", 1)[0] if name.startswith("cold_start.") else name, stats)
    return out


def _warnings(base: Side, current: Side) -> tuple[list[str], list[str], list[str]]:
    """(warnings, comparable metrics, metrics only one side has)."""
    b, c = base.baseline, current.baseline
    warnings = [f"baseline: {w}" for w in b.warnings] + [f"current: {w}" for w in c.warnings]
    b_names, c_names = _metric_names(b), _metric_names(c)
    comparable, missing = [], []
    for name in sorted(set(b_names) | set(c_names)):
        if name in b_names and name in c_names:
            provenance = {b_names[name].provenance.value, c_names[name].provenance.value}
            comparable.append(f"{name} ({' / '.join(sorted(provenance))})")
        else:
            missing.append(f"{name} (only the {'baseline' if name in b_names else 'current side'} has it)")
    if b.tool is not c.tool:
        warnings.append(
            f"a comparison across tools ({c.tool.value} against {b.tool.value}): only metrics both define as "
            f"finishline does are compared: {', '.join(comparable) or 'none'}"
        )
        for side in (b, c):
            if side.tool is not Tool.FINISHLINE and side.client_overhead_note:
                warnings.append(side.client_overhead_note)
    b_slo = b.summary.slo if b.summary is not None else None
    c_slo = c.summary.slo if c.summary is not None else None
    if b.summary is not None and c.summary is not None and b_slo != c_slo:
        warnings.append("the two sides declared different SLOs: goodput counts different requests as good")
    if b.tool is Tool.FINISHLINE and c.tool is Tool.FINISHLINE:
        same = ("kind", "model", "image", "image_id", "command", "limits", "simulator")
        differ = [k for k in same if getattr(b.target, k) != getattr(c.target, k)]
        if differ:
            warnings.append(f"the two runs' targets differ in {', '.join(differ)}")
    return warnings, comparable if b.tool is not c.tool else [], missing


def compare(current: Side, base: Side, thresholds: Thresholds) -> Comparison:
    """``current`` against ``base``; one line (UserError) when no step of the two matches."""
    matching = match_steps(current.baseline.steps, base.baseline.steps)
    if not matching.matches:
        names = ", ".join(sorted({s.name for s in current.baseline.steps})) or "none"
        theirs = ", ".join(sorted({s.name for s in base.baseline.steps})) or "none"
        raise UserError(
            f"no step of {current.label} ({names}) matches a step of {base.label} ({theirs}) by name or by load"
        )
    steps = [_StepComparer(match, base, current, thresholds).compare() for match in matching.matches]
    warnings, comparable, missing = _warnings(base, current)
    sampled = [n for n in (*LATENCIES, *RATES) if n not in FAILURE_AWARE]  # failure-aware ones are points always
    if any(m.method is Method.POINT for s in steps for m in s.metrics if m.metric in sampled):
        warnings.append(
            "a side has summaries only for some steps: those figures are compared as points, by the threshold alone"
        )
    verdicts = [m.verdict for s in steps for m in s.metrics]
    worse = verdicts.count(Verdict.WORSE)
    return Comparison(
        current=_info(current),
        baseline=_info(base),
        thresholds=thresholds,
        steps=steps,
        unmatched_current=[f"{s.name}/{s.workload}" for s in matching.unmatched_current],
        unmatched_baseline=[f"{s.name}/{s.workload}" for s in matching.unmatched_baseline],
        comparable=comparable,
        not_comparable=missing,
        warnings=warnings,
        regression=worse > 0,
        worse=worse,
        better=verdicts.count(Verdict.BETTER),
        exit_code=1 if worse else 0,
    )
