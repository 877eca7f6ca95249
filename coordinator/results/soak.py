"""Soak analysis: does the endpoint drift over a long run? (``soak.json``; docs/soak.md)

A scenario with a ``soak`` section, or with a phase of kind ``soak``, gets it. The soak phase
(``soak.phase``, else the longest phase of kind ``soak``, else the longest measured phase) is cut into windows of ``soak.window_s``; each window gets TTFT and TPOT p50
and p99, throughput (requests/s, output tokens/s), error rate, the target container's memory
and the largest worker's resident memory. Each series gets a Theil–Sen trend
(:mod:`coordinator.results.trend`) in units per hour with a confidence interval.

A series *drifts* when the whole interval of its slope lies beyond the user's limit in the
direction that hurts (latency, errors and memory up; throughput down): noise alone, which
widens the interval, never makes a run drifting. Limits are percent per hour of the series'
level at the start (the trend line's value at the first window), and for the error rate,
which often starts at zero, its share per hour. Any drifting series makes the run
``drifting`` (exit 7, ``coordinator.results.outcome``); too few windows make it
``inconclusive`` (no exit code of its own).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import BaseModel, ConfigDict, Field

from coordinator.results.columns import Floats, RecordColumns
from coordinator.results.trend import theil_sen
from loadgen.declaration import Spec
from loadgen.records import ErrorClass
from loadgen.samples import StatsSample, WorkerSample

if TYPE_CHECKING:  # the summary carries the verdict; the analysis only reads phase windows
    from coordinator.results.summary import PhaseWindow

SOAK_FILE = "soak.json"
SCHEMA_ID = "https://finishline.dev/soak.schema.json"
CONTAINER_STATS_FILE = "container_stats.jsonl"  # coordinator/docker/stats.py writes it
SOAK_VERSION: Literal[1] = 1
Verdict = Literal["stable", "drifting", "inconclusive"]

# series -> (title, unit, the direction that hurts)
SERIES: dict[str, tuple[str, str, Literal["up", "down"]]] = {
    "ttft_p50": ("TTFT p50", "ms", "up"),
    "ttft_p99": ("TTFT p99", "ms", "up"),
    "tpot_p50": ("TPOT p50", "ms", "up"),
    "tpot_p99": ("TPOT p99", "ms", "up"),
    "requests_per_s": ("requests/s", "1/s", "down"),
    "output_tokens_per_s": ("output tokens/s", "1/s", "down"),
    "error_rate": ("error rate", "share", "up"),
    "target_memory": ("target container memory", "bytes", "up"),
    "worker_memory": ("worker memory (largest)", "bytes", "up"),
}


class SlopeLimits(Spec):
    """Percent of the start level per hour a series may move in the direction that hurts; null: not judged."""

    ttft_p50: float | None = Field(default=10.0, gt=0)
    ttft_p99: float | None = Field(default=10.0, gt=0)
    tpot_p50: float | None = Field(default=10.0, gt=0)
    tpot_p99: float | None = Field(default=10.0, gt=0)
    requests_per_s: float | None = Field(default=10.0, gt=0, description="a fall of this much is drift")
    output_tokens_per_s: float | None = Field(default=10.0, gt=0, description="a fall of this much is drift")
    target_memory: float | None = Field(default=10.0, gt=0, description="the target container (Docker targets)")
    worker_memory: float | None = Field(default=10.0, gt=0, description="the largest worker's resident memory")


class SoakSpec(Spec):
    """Judge the run as a soak: windowed series, their trends, a verdict (scenario section ``soak``)."""

    phase: str | None = Field(default=None, description="the phase analysed; default: the longest measured phase")
    window_s: float = Field(default=60.0, gt=0, description="seconds per window")
    warmup_s: float = Field(
        default=0.0, ge=0, description="seconds at the phase's start left out of the trends (caches, pools filling)"
    )
    min_windows: int = Field(default=5, ge=3, description="fewer full windows than this: inconclusive, not judged")
    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="of each slope's interval")
    max_slope_pct_per_hour: SlopeLimits = SlopeLimits()
    max_error_rate_rise_per_hour: float | None = Field(
        default=0.01, gt=0, description="the error rate's rise per hour (a share: 0.01 is one point), null: not judged"
    )

    def limit(self, series: str) -> float | None:
        if series == "error_rate":
            return self.max_error_rate_rise_per_hour
        value: float | None = getattr(self.max_slope_pct_per_hour, series)
        return value


class _Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Trend(_Document):
    """One series' Theil–Sen trend; ``*_pct`` are percent of ``start`` per hour (None without a positive start)."""

    windows: int = Field(ge=0, description="windows fitted")
    start: float = Field(description="the trend line at the first window fitted: the level slopes are relative to")
    start_at_s: float = Field(description="where that is: the first window fitted's midpoint, seconds into the phase")
    slope_per_hour: float
    low_per_hour: float
    high_per_hour: float
    slope_pct: float | None
    low_pct: float | None
    high_pct: float | None
    worse: Literal["up", "down"] = Field(description="the direction that hurts")
    limit: float | None = Field(description="the limit judged against (percent per hour; the error rate: share)")
    drifting: bool


class SoakVerdict(_Document):
    """The soak's verdict and each series' trend (in summary.json and soak.json)."""

    verdict: Verdict
    phase: str
    window_s: float
    windows: int = Field(ge=0, description="full windows in the phase")
    confidence: float
    trends: dict[str, Trend] = Field(description="per series with enough data (SERIES in coordinator/results/soak.py)")
    reasons: tuple[str, ...] = Field(description="one line per drifting series, or why the soak is inconclusive")


class SoakWindow(_Document):
    """One window's figures; ``None`` where it had no data (no successful request, no sample)."""

    start_s: float = Field(description="seconds since the phase began")
    requests: int = Field(ge=0, description="requests that ended in the window (cancelled ones left out)")
    ttft_p50: float | None
    ttft_p99: float | None
    tpot_p50: float | None
    tpot_p99: float | None
    requests_per_s: float
    output_tokens_per_s: float
    error_rate: float | None
    target_memory: float | None = Field(description="mean memory of the target container, bytes")
    worker_memory: float | None = Field(description="mean resident memory of the largest worker, bytes")


class SoakAnalysis(_Document):
    """``soak.json``: every window's figures and the verdict."""

    version: Literal[1] = SOAK_VERSION
    verdict: SoakVerdict
    windows: tuple[SoakWindow, ...]

    def series(self, name: str) -> tuple[Floats, Floats]:
        """(window midpoints in hours since the phase began, values) of the windows with data."""
        points = [(w.start_s, getattr(w, name)) for w in self.windows if getattr(w, name) is not None]
        half = self.verdict.window_s / 2
        x = np.array([(start + half) / 3600.0 for start, _ in points], dtype=np.float64)
        return x, np.array([value for _, value in points], dtype=np.float64)


def soak_phase(spec: SoakSpec, windows: Sequence[PhaseWindow], unmeasured: frozenset[str]) -> PhaseWindow | None:
    """The phase a soak analyses: the named one, else the longest measured one that has ended."""
    ended = [w for w in windows if w.end is not None and w.name not in unmeasured]
    if spec.phase is not None:
        return next((w for w in windows if w.name == spec.phase), None)
    return max(ended, key=lambda w: (w.end or w.start) - w.start, default=None)


def read_container_stats(run_dir: Path) -> list[StatsSample]:
    """The target container's stats samples (none without a Docker target); a cut last line is skipped."""
    path = run_dir / CONTAINER_STATS_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            out.append(StatsSample(**orjson.loads(line)))
        except (orjson.JSONDecodeError, TypeError):
            continue
    return out


def _ms(values: Floats, q: float) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.percentile(values, q) * 1000.0) if values.size else None


def _bucket(times: Floats, start: float, spec: SoakSpec, count: int) -> npt.NDArray[np.int64]:
    """The window of each time (-1: outside every full window)."""
    index = np.floor((times - start) / spec.window_s)
    return np.where((index >= 0) & (index < count), index, -1).astype(np.int64)


def _by_window(bucket: npt.NDArray[np.int64], count: int) -> list[npt.NDArray[np.intp]]:
    """The positions of each window's items, in one sort (a day of records in minute windows
    would take minutes if each window scanned them all)."""
    inside = np.flatnonzero(bucket >= 0)
    order = inside[np.argsort(bucket[inside], kind="stable")]
    bounds = np.searchsorted(bucket[order], np.arange(count + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(count)]


def _worker_memory(samples: Sequence[WorkerSample], windows: list[npt.NDArray[np.intp]]) -> list[float | None]:
    """Per window, the largest of each worker's mean resident memory (samples without it left out)."""
    out: list[float | None] = []
    for positions in windows:
        rss: dict[str, list[int]] = {}
        for i in positions:
            sample = samples[int(i)]
            if sample.rss_bytes > 0:
                rss.setdefault(sample.worker, []).append(sample.rss_bytes)
        out.append(max(float(np.mean(v)) for v in rss.values()) if rss else None)
    return out


def _windows(
    cols: RecordColumns,
    phase: PhaseWindow,
    spec: SoakSpec,
    samples: Sequence[WorkerSample],
    stats: Sequence[StatsSample],
) -> list[SoakWindow]:
    end = phase.end if phase.end is not None else float(np.nanmax(cols.end, initial=phase.start))
    count = math.floor((end - phase.start) / spec.window_s + 1e-9)
    rows = cols.of_phase(phase.name)
    if ErrorClass.CANCELLED.value in cols.classes:
        rows &= cols.outcome != cols.classes.index(ErrorClass.CANCELLED.value)
    bucket = np.where(rows, _bucket(cols.end, phase.start, spec, count), -1)
    requests = _by_window(bucket, count)
    times = np.array([s.time for s in samples], dtype=np.float64)
    worker_memory = _worker_memory(samples, _by_window(_bucket(times, phase.start, spec, count), count))
    memory = np.array([s.memory_bytes for s in stats], dtype=np.float64)
    stats_windows = _by_window(_bucket(np.array([s.time for s in stats]), phase.start, spec, count), count)
    ttft, tpot = cols.values["ttft"], cols.values["tpot"]
    out = []
    for i, in_window in enumerate(requests):
        ok = in_window[cols.ok[in_window]]
        n = int(in_window.size)
        out.append(
            SoakWindow(
                start_s=i * spec.window_s,
                requests=n,
                ttft_p50=_ms(ttft[ok], 50),
                ttft_p99=_ms(ttft[ok], 99),
                tpot_p50=_ms(tpot[ok], 50),
                tpot_p99=_ms(tpot[ok], 99),
                requests_per_s=n / spec.window_s,
                output_tokens_per_s=float(cols.output_tokens[ok].sum()) / spec.window_s,
                error_rate=(n - int(ok.size)) / n if n else None,
                target_memory=float(memory[stats_windows[i]].mean()) if stats_windows[i].size else None,
                worker_memory=worker_memory[i],
            )
        )
    return out


def judge_trend(series: str, x: Floats, y: Floats, spec: SoakSpec) -> Trend:
    """The trend of one series (x in hours) and whether it drifts beyond ``spec``'s limit."""
    fit = theil_sen(x, y, spec.confidence)
    start = fit.at(float(x[0]))
    worse = SERIES[series][2]
    limit = spec.limit(series)
    relative = series != "error_rate"
    pct = [100.0 * v / start if relative and start > 0 else None for v in (fit.slope, fit.low, fit.high)]
    if limit is None:
        drifting = False
    elif not relative:
        drifting = fit.low > limit if worse == "up" else fit.high < -limit
    elif pct[1] is None or pct[2] is None:
        drifting = False  # no positive level to be relative to
    else:
        drifting = pct[1] > limit if worse == "up" else pct[2] < -limit
    return Trend(
        windows=fit.n,
        start=start,
        start_at_s=float(x[0]) * 3600.0,
        slope_per_hour=fit.slope,
        low_per_hour=fit.low,
        high_per_hour=fit.high,
        slope_pct=pct[0],
        low_pct=pct[1],
        high_pct=pct[2],
        worse=worse,
        limit=limit,
        drifting=drifting,
    )


def describe(series: str, trend: Trend, confidence: float) -> str:
    """One line for a drifting series: what moved, how fast, and the limit it passed."""
    title, unit, worse = SERIES[series]
    moves = "rises" if worse == "up" else "falls"
    ci = f"{100 * confidence:g}% CI"
    if trend.slope_pct is None or trend.low_pct is None or trend.high_pct is None:
        return (
            f"{title} {moves} {trend.slope_per_hour:+.4g}/h ({ci} {trend.low_per_hour:+.4g} to "
            f"{trend.high_per_hour:+.4g}), beyond soak.max_error_rate_rise_per_hour {trend.limit:g}"
        )
    return (
        f"{title} {moves} {trend.slope_pct:+.1f}%/h ({ci} {trend.low_pct:+.1f} to {trend.high_pct:+.1f}%/h) "
        f"from {trend.start:.4g} {unit}, beyond soak.max_slope_pct_per_hour.{series} {trend.limit:g}%/h"
    )


def analyse(
    cols: RecordColumns,
    phase: PhaseWindow,
    spec: SoakSpec,
    samples: Sequence[WorkerSample] = (),
    stats: Sequence[StatsSample] = (),
) -> SoakAnalysis:
    """The soak analysis of one phase of a run."""
    windows = _windows(cols, phase, spec, samples, stats)
    kept = [w for w in windows if w.start_s >= spec.warmup_s]
    trends: dict[str, Trend] = {}
    reasons: list[str] = []
    if len(kept) < spec.min_windows:
        verdict: Verdict = "inconclusive"
        reasons.append(
            f"{len(kept)} full windows of {spec.window_s:g} s after the warm-up, fewer than soak.min_windows "
            f"{spec.min_windows}: make the phase longer or the windows shorter"
        )
    else:
        half = spec.window_s / 2
        for series in SERIES:
            points = [(w.start_s + half, getattr(w, series)) for w in kept if getattr(w, series) is not None]
            if len(points) < spec.min_windows:
                continue
            x = np.array([t / 3600.0 for t, _ in points], dtype=np.float64)
            y = np.array([v for _, v in points], dtype=np.float64)
            trends[series] = trend = judge_trend(series, x, y, spec)
            if trend.drifting:
                reasons.append(describe(series, trend, spec.confidence))
        verdict = "drifting" if reasons else "stable"
    return SoakAnalysis(
        verdict=SoakVerdict(
            verdict=verdict,
            phase=phase.name,
            window_s=spec.window_s,
            windows=len(windows),
            confidence=spec.confidence,
            trends=trends,
            reasons=tuple(reasons),
        ),
        windows=tuple(windows),
    )


def schema_json() -> str:
    """``docs/soak.schema.json`` (``finishline schema --soak``)."""
    schema = SoakAnalysis.model_json_schema(mode="validation")
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
    return json.dumps(document, indent=2) + "\n"
