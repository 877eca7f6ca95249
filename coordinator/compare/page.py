"""``compare.html``: one self-contained page (inline CSS and SVG, as the run's report) with the figures.

The verdict and the table (worst first), then per step both sides' CDFs of TTFT, TPOT, ITL and
E2E overlaid (baseline dashed), the throughput-latency curves of both sides when there are
several steps, and the cold-start steps side by side. Figures are drawn the way the run's
report draws them (``coordinator.results.figures``).
"""

from __future__ import annotations

import html
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from coordinator.baselines.model import Step
from coordinator.compare.result import Comparison, StepComparison, Verdict
from coordinator.compare.sides import Floats, Side
from coordinator.compare.tables import COLUMNS, row_cells
from coordinator.results.figures import MAX_POINTS, to_svg
from coordinator.results.page import PAGE_CSS

_CSS = PAGE_CSS + "tr.worse td{background:#fde2e1}tr.better td{background:#e6f4ea}\n"
BASE_STYLE: dict[str, Any] = {"linestyle": "--", "color": "#888888"}
CURRENT_STYLE: dict[str, Any] = {"color": "#1f77b4"}


CDF_METRICS = ("ttft", "tpot", "itl", "e2e")  # one figure each, both sides overlaid


def _e(text: object) -> str:
    return html.escape(str(text))


def _cdf(ax: Any, values: Floats, **style: Any) -> None:
    finite = np.sort(values[np.isfinite(values)])
    if not finite.size:
        return
    idx = (
        np.linspace(0, finite.size - 1, MAX_POINTS).astype(int) if finite.size > MAX_POINTS else np.arange(finite.size)
    )
    ax.plot(finite[idx], (idx + 1) / finite.size, **style)


def _step_of(side: Side, name: str, workload: str) -> Step | None:
    return next((s for s in side.baseline.steps if s.name == name and s.workload == workload), None)


def cdfs(step: StepComparison, current: Side, baseline: Side) -> str | None:
    c_step, b_step = (
        _step_of(current, step.current_step, step.workload),
        _step_of(baseline, step.baseline_step, step.workload),
    )
    c = current.samples_of(c_step) if c_step is not None else None
    b = baseline.samples_of(b_step) if b_step is not None else None
    if c is None and b is None:
        return None
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), layout="constrained")
    for ax, name in zip(axes, CDF_METRICS, strict=True):
        for side, who, style in ((b, "baseline", BASE_STYLE), (c, "current", CURRENT_STYLE)):
            values = side.latency(name) if side is not None else None
            if values is not None:
                _cdf(ax, values, label=who, **style)
        ax.set_title(f"{name.upper()} CDF")
        ax.set_xlabel(f"{name.upper()} (ms)")
        ax.set_ylim(0, 1.01)
    axes[0].set_ylabel("share of requests (ITL: of tokens)")
    axes[-1].legend(loc="lower right", fontsize=7)
    return to_svg(fig)


def _curve(side: Side, steps: list[str]) -> tuple[list[float], list[float], list[float]]:
    xs, ttft, tpot = [], [], []
    for name in steps:
        s = _step_of(side, name, "all")
        if s is None:
            continue
        rate, t1, t2 = (s.metrics.get(k) for k in ("output_tokens_per_s", "ttft", "tpot"))
        if rate is None or rate.mean is None or t1 is None or t2 is None:
            continue
        xs.append(rate.mean)
        ttft.append(np.nan if t1.p50 is None else t1.p50)
        tpot.append(np.nan if t2.p50 is None else t2.p50)
    return xs, ttft, tpot


def throughput_latency(c: Comparison, current: Side, baseline: Side) -> str | None:
    steps = [s for s in c.steps if s.workload == "all" and any(m.metric == "output_tokens_per_s" for m in s.metrics)]
    if len(steps) < 2:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    for side, names, style in (
        (baseline, [s.baseline_step for s in steps], BASE_STYLE),
        (current, [s.current_step for s in steps], CURRENT_STYLE),
    ):
        xs, ttft, tpot = _curve(side, names)
        who = "baseline" if side is baseline else "current"
        axes[0].plot(xs, ttft, marker="o", label=who, **style)
        axes[1].plot(xs, tpot, marker="o", label=who, **style)
    for ax, name in zip(axes, ("TTFT p50 (ms)", "TPOT p50 (ms)"), strict=True):
        ax.set_xlabel("output tokens/s")
        ax.set_ylabel(name)
    axes[1].legend(fontsize=7)
    return to_svg(fig)


def cold_starts(c: Comparison) -> str | None:
    rows = [(s, m) for s in c.steps for m in s.metrics if m.metric.startswith("cold_start.")]
    rows = [(s, m) for s, m in rows if m.baseline is not None and m.current is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.4 * len(rows) + 1.2), layout="constrained")
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [float(m.baseline or 0.0) for _, m in rows], height=0.4, label="baseline", color="#bbbbbb")
    ax.barh(y + 0.2, [float(m.current or 0.0) for _, m in rows], height=0.4, label="current", color="#1f77b4")
    ax.set_yticks(y, [f"{m.metric.removeprefix('cold_start.')} {m.stat}" for _, m in rows])
    ax.set_xlabel("ms")
    ax.legend(fontsize=7)
    return to_svg(fig)


def _table(c: Comparison) -> str:
    head = "".join(f"<th class='l'>{_e(h)}</th>" if i < 4 else f"<th>{_e(h)}</th>" for i, h in enumerate(COLUMNS))
    body = []
    for step, m in c.worst_first():
        cells = row_cells(step, m)
        tds = "".join(f"<td class='l'>{_e(x)}</td>" if i < 4 else f"<td>{_e(x)}</td>" for i, x in enumerate(cells))
        cls = m.verdict.value if m.verdict in (Verdict.WORSE, Verdict.BETTER) else ""
        body.append(f"<tr class='{cls}'>{tds}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _figure(svg: str | None, caption: str) -> str:
    return f"<figure>{svg}<figcaption class='note'>{_e(caption)}</figcaption></figure>" if svg else ""


def page(c: Comparison, current: Side, baseline: Side) -> str:
    title = f"finishline compare — {c.current.label} against {c.baseline.label}"
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>",
        f"<div class='banner {'bad' if c.regression else 'ok'}'><b>{_e(c.headline)}</b></div>",
        *(f"<div class='banner warn'>{_e(w)}</div>" for w in c.warnings),
        "<h2>Every figure, worst first</h2>",
        "<p class='note'>Worse or better needs the change beyond its threshold and its "
        f"{100 * c.thresholds.confidence:g}% interval excluding zero; point: a side has summaries only.</p>",
        _table(c),
        "<h2>Latency distributions</h2>",
    ]
    for step in c.steps:
        if step.workload == "all" and not step.current_step.startswith("cold"):
            parts.append(_figure(cdfs(step, current, baseline), f"{step.match}: baseline dashed, current solid."))
    parts.append(_figure(throughput_latency(c, current, baseline), "Throughput against latency, one point per step."))
    cold = cold_starts(c)
    if cold:
        parts += ["<h2>Cold starts</h2>", _figure(cold, "Each step of a cold start, baseline against current.")]
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)
