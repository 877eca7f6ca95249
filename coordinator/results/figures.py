"""The report's figures, drawn with matplotlib and returned as inline SVG (the report stays one file)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from coordinator.results.columns import Mask, RecordColumns
from coordinator.results.summary import PhaseWindow, Summary
from loadgen.samples import WorkerSample

MAX_POINTS = 5000  # scatter plots are thinned to this many points (evenly), to keep the file small
# svg.fonttype none: labels stay text (searchable, small); constrained layout keeps every label
# inside the figure, which bbox_inches="tight" alone did not (a shared-x label got cut off)
plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3})


def to_svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.find("<svg") :]  # drop the XML prolog and doctype: inline in HTML


def _thin(n: int) -> np.ndarray:
    return np.linspace(0, n - 1, MAX_POINTS).astype(int) if n > MAX_POINTS else np.arange(n)


def latency_cdfs(cols: RecordColumns, rows: Mask) -> str:
    """Empirical CDFs of TTFT, TPOT, ITL and E2E per workload (the rows' successful requests)."""
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), layout="constrained")
    by_workload = cols.workloads_in(rows & cols.ok)
    for ax, name in zip(axes, ("TTFT", "TPOT", "ITL", "E2E"), strict=True):
        for workload, ok in by_workload:
            if name == "ITL":
                vals = cols.itl(ok)
            else:
                vals = cols.values[name.lower()][ok]
                vals = vals[~np.isnan(vals)]  # undefined (a TPOT of one token)
            if not vals.size:
                continue
            xs = np.sort(vals) * 1000
            ys = np.arange(1, xs.size + 1) / xs.size
            idx = _thin(xs.size)
            ax.plot(xs[idx], ys[idx], label=workload)
        ax.set_title(f"{name} CDF")
        ax.set_xlabel(f"{name} (ms)")
        ax.set_ylim(0, 1.01)
    axes[0].set_ylabel("share of requests")
    if by_workload:
        axes[-1].legend(loc="lower right", fontsize=7)
    return to_svg(fig)


CHAR_WIDTH = 0.006  # one 8 pt character as a share of a 13-inch axis: enough to keep names apart


def _phase_bands(ax: Any, windows: Sequence[PhaseWindow], origin: float, label: bool = True) -> None:
    """Shade each phase; names go above the axes, where they cannot hide a data point.

    A name that would run into the previous one (a short phase) goes up a line.
    """
    spans = [(i, w.name, w.start, w.end) for i, w in enumerate(windows) if w.end is not None]
    if not spans:
        return
    left = min(start for _, _, start, _ in spans) - origin
    width = max(max(end for _, _, _, end in spans) - origin - left, 1e-9)
    free_from = [float("-inf")] * 5  # per line: where the last name on it ends (share of the time span)
    for i, name, start, end in spans:
        ax.axvspan(start - origin, end - origin, color=f"C{i % 10}", alpha=0.07)
        if not label:
            continue
        at = (start - origin - left) / width
        line = next((n for n, free in enumerate(free_from) if at >= free), len(free_from) - 1)
        free_from[line] = at + CHAR_WIDTH * (len(name) + 1)
        ax.text(
            start - origin,
            1.01 + 0.09 * line,
            name,
            transform=ax.get_xaxis_transform(),
            fontsize=8,
            va="bottom",
            ha="left",
            clip_on=False,
        )


def over_time(cols: RecordColumns, windows: Sequence[PhaseWindow]) -> str:
    """TTFT and median ITL of each successful request against time, phases shaded."""
    ok = np.flatnonzero(cols.ok)
    fig, axes = plt.subplots(2, 1, figsize=(13, 5), sharex=True, layout="constrained")
    origin = min([w.start for w in windows] + ([float(cols.scheduled[ok].min())] if ok.size else []) or [0.0])
    if ok.size:
        chosen = ok[_thin(ok.size)]
        t = cols.sent[chosen] - origin
        ttfts = cols.values["ttft"][chosen] * 1000
        starts = cols.itl_starts()
        itls = np.array([_median(cols.itl_of_row(int(i), starts)) for i in chosen]) * 1000
        axes[0].scatter(t, ttfts, s=3, alpha=0.5)
        axes[1].scatter(t, itls, s=3, alpha=0.5, color="C1")
    for ax in axes:
        _phase_bands(ax, windows, origin, label=ax is axes[0])
    axes[0].set_ylabel("TTFT (ms)")
    axes[1].set_ylabel("median ITL (ms)")
    axes[1].set_xlabel("seconds since start (request sent)")
    return to_svg(fig)


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else float("nan")


def per_phase(summary: Summary) -> str:
    """Throughput (req/s, output tok/s) and TTFT/TPOT p50/p99 for each phase."""
    phases = summary.phases_order
    data = [summary.phases[p] for p in phases]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), layout="constrained")
    x = np.arange(len(phases))

    def val(v: Any) -> float:
        return float("nan") if v is None else float(v)

    axes[0].bar(x, [val(d.requests_per_s) for d in data], color="C0")
    axes[0].set_title("throughput: requests")
    axes[0].set_ylabel("requests/s")
    axes[1].bar(x, [val(d.output_tokens_per_s) for d in data], color="C2")
    axes[1].set_title("throughput: output tokens")
    axes[1].set_ylabel("output tokens/s")
    width = 0.2
    for i, (metric, p) in enumerate((("ttft", 50.0), ("ttft", 99.0), ("tpot", 50.0), ("tpot", 99.0))):
        axes[2].bar(
            x + (i - 1.5) * width,
            [val(d.latency_ms.get(metric).at(p)) for d in data],
            width,
            label=f"{metric.upper()} p{p:g}",
        )
    axes[2].set_title("latency")
    axes[2].set_ylabel("ms")
    axes[2].legend(
        fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0
    )  # beside, not on, the bars
    _phase_ticks(axes, x, phases)
    return to_svg(fig)


def _phase_ticks(axes: Sequence[Any], x: np.ndarray, phases: Sequence[str]) -> None:
    """Phase names under the bars: level while they fit, slanted when there are many or long ones."""
    slant = len(phases) > 4 or max((len(p) for p in phases), default=0) > 12
    for ax in axes:
        if slant:
            ax.set_xticks(x, phases, rotation=30, ha="right", fontsize=8)
        else:
            ax.set_xticks(x, phases, fontsize=8)


def errors(summary: Summary) -> str | None:
    """Failed requests by error class and phase (``None`` when nothing failed)."""
    phases = summary.phases_order
    classes = sorted({c for p in phases for c in summary.phases[p].errors_by_class})
    if not classes:
        return None
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(phases) + 2.5), 3), layout="constrained")
    x = np.arange(len(phases))
    bottom = np.zeros(len(phases))
    for cls in classes:
        counts = np.array([summary.phases[p].errors_by_class.get(cls, 0) for p in phases], dtype=float)
        ax.bar(x, counts, 0.5, bottom=bottom, label=cls)
        bottom += counts
    ax.set_ylabel("failed requests")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.2 of a request
    ax.set_ylim(0, max(1.0, float(bottom.max())) * 1.1)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, title="error class")
    _phase_ticks([ax], x, phases)
    return to_svg(fig)


def client_health(samples: Sequence[WorkerSample]) -> str | None:
    """Worker CPU and gevent loop lag over time (the self-check's evidence)."""
    if not samples:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(13, 2.8), layout="constrained")
    origin = min(s.time for s in samples)
    by_worker: dict[str, list[WorkerSample]] = {}
    for s in samples:
        by_worker.setdefault(s.worker, []).append(s)
    for worker, rows in sorted(by_worker.items()):
        t = [r.time - origin for r in rows]
        axes[0].plot(t, [r.cpu_percent for r in rows], label=worker)
        axes[1].plot(t, [r.loop_lag_ms for r in rows], label=worker)
    axes[0].set_title("worker CPU")
    axes[0].set_ylabel("CPU %")
    axes[1].set_title("gevent loop lag")
    axes[1].set_ylabel("ms")
    axes[0].legend(fontsize=7, title="worker")
    for ax in axes:
        ax.set_xlabel("seconds since the first sample")
    return to_svg(fig)
