"""A comparison as a text table (the console) and as Markdown (a pull-request comment, worst first).

Both list every compared figure: step (and how it was matched), workload, metric and
statistic, baseline, current, delta (and relative), the interval, how it was judged, and the
verdict. The text table keeps the steps' order; the Markdown puts the worst regressions first,
so the comment's first rows are what failed the build.
"""

from __future__ import annotations

from coordinator.compare.result import Comparison, Method, MetricComparison, StepComparison, Verdict

MARK = {Verdict.WORSE: "WORSE", Verdict.BETTER: "better", Verdict.SAME: "same", Verdict.UNJUDGED: "n/a"}
MD_MARK = {Verdict.WORSE: "🔴 worse", Verdict.BETTER: "🟢 better", Verdict.SAME: "same", Verdict.UNJUDGED: "n/a"}


def _scale(m: MetricComparison) -> float:
    return 100.0 if m.unit == "%" else 1.0


def value(m: MetricComparison, v: float | None) -> str:
    if v is None:
        return "-"
    v *= _scale(m)
    digits = 2 if m.unit == "%" or abs(v) < 10 else 1
    return f"{v:,.{digits}f}"


def delta(m: MetricComparison) -> str:
    if m.delta is None:
        return "-"
    rel = f" ({100 * m.relative:+.1f}%)" if m.relative is not None else ""
    return f"{m.delta * _scale(m):+,.2f}{rel}"


def interval(m: MetricComparison) -> str:
    if m.ci_low is None or m.ci_high is None:
        return "point" if m.method is Method.POINT else "-"
    s = _scale(m)
    return f"[{m.ci_low * s:+,.2f}, {m.ci_high * s:+,.2f}]"


def label(m: MetricComparison) -> str:
    return f"{m.metric} {m.stat}" if m.stat != "mean" else m.metric


def _head(c: Comparison) -> list[str]:
    lines = [
        f"current:  {c.current.label} ({c.current.tool.value}, {c.current.source})",
        f"baseline: {c.baseline.label} ({c.baseline.tool.value}, {c.baseline.source})",
    ]
    lines += [f"warning: {w}" for w in c.warnings]
    if c.unmatched_current:
        lines.append(f"not compared (no matching baseline step): {', '.join(c.unmatched_current)}")
    if c.unmatched_baseline:
        lines.append(f"baseline steps without a match: {', '.join(c.unmatched_baseline)}")
    return lines


COLUMNS = ("step", "workload", "metric", "unit", "baseline", "current", "delta", "95% CI", "threshold", "verdict")


def row_cells(step: StepComparison, m: MetricComparison) -> list[str]:
    return [
        step.match,
        step.workload,
        label(m),
        m.unit,
        value(m, m.baseline),
        value(m, m.current),
        delta(m),
        interval(m),
        m.threshold,
        MARK[m.verdict],
    ]


def text(c: Comparison) -> str:
    rows = [list(COLUMNS)]
    rows[0][7] = f"{100 * c.thresholds.confidence:g}% CI"
    rows += [row_cells(step, m) for step in c.steps for m in step.metrics]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    right = {4, 5, 6, 7}
    table = [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    return "\n".join([*_head(c), "", *table, "", f"finishline: {c.headline} (exit {c.exit_code})"]) + "\n"


def markdown(c: Comparison) -> str:
    title = "Regression" if c.regression else "No regression"
    lines = [
        f"### finishline compare: {title}",
        "",
        f"**{c.headline}**",
        "",
        f"Current `{c.current.label}` ({c.current.tool.value}) against baseline `{c.baseline.label}` "
        f"({c.baseline.tool.value}). A verdict needs the change beyond its threshold and its "
        f"{100 * c.thresholds.confidence:g}% interval excluding zero; `point`: a side has summaries only.",
        "",
    ]
    lines += [f"> ⚠️ {w}" for w in c.warnings]
    if c.warnings:
        lines.append("")
    head = list(COLUMNS)
    head[7] = f"{100 * c.thresholds.confidence:g}% CI"
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---:" if i in (4, 5, 6, 7) else "---" for i in range(len(head))) + "|")
    for step, m in c.worst_first():
        cells = row_cells(step, m)
        cells[-1] = MD_MARK[m.verdict]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    for name, items in (
        ("Not compared", c.unmatched_current),
        ("Baseline steps without a match", c.unmatched_baseline),
    ):
        if items:
            lines += ["", f"{name}: {', '.join(items)}"]
    return "\n".join(lines) + "\n"
