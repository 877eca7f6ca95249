"""The report's soak section: each windowed series with its Theil–Sen line, and the verdict with its figures.

The series are those of ``soak.json`` (:mod:`coordinator.results.soak`), drawn as the other
figures are (matplotlib, inline SVG); the soak Grafana dashboard (``dashboards/soak.py``) shows
the same series live.
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib.pyplot as plt

from coordinator.results.figures import to_svg
from coordinator.results.soak import SERIES, SOAK_FILE, SoakAnalysis, Trend

_SCALE = {"ms": (1.0, "ms"), "1/s": (1.0, "per s"), "share": (100.0, "%"), "bytes": (1 / 2**20, "MiB")}


def read_soak(run_dir: Path) -> SoakAnalysis | None:
    """The run's ``soak.json``, if it has one (a scenario with a ``soak`` section)."""
    path = run_dir / SOAK_FILE
    return SoakAnalysis.model_validate_json(path.read_bytes()) if path.exists() else None


def soak_figure(analysis: SoakAnalysis) -> str | None:
    """One panel per series with data: its windows (dots), its trend (line, red when drifting)."""
    names = [name for name in SERIES if analysis.series(name)[0].size]
    if not names:
        return None
    cols = 3
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(13, 2.6 * rows), layout="constrained", squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names, strict=False):
        title, unit, _ = SERIES[name]
        scale, label = _SCALE[unit]
        x, y = analysis.series(name)
        minutes = x * 60.0
        ax.plot(minutes, y * scale, "o", markersize=3, color="tab:blue")
        trend = analysis.verdict.trends.get(name)
        if trend is not None:
            line = trend.start + trend.slope_per_hour * (x - trend.start_at_s / 3600.0)
            ax.plot(minutes, line * scale, "-", color="tab:red" if trend.drifting else "tab:green")
            title = f"{title}: {_slope(name, trend)}"
        ax.set_title(title, fontsize=8)
        ax.set_ylabel(label)
        ax.set_xlabel("minutes into the phase")
    return to_svg(fig)


def _slope(name: str, trend: Trend) -> str:
    """Percent of the start per hour; the error rate (judged absolute) in percentage points per hour."""
    if trend.slope_pct is None or trend.low_pct is None or trend.high_pct is None:
        scale, unit = (100.0, " points") if name == "error_rate" else (1.0, "")
        low, slope, high = (scale * v for v in (trend.low_per_hour, trend.slope_per_hour, trend.high_per_hour))
        return f"{slope:+.3g}{unit}/h [{low:+.3g}, {high:+.3g}]"
    return f"{trend.slope_pct:+.1f}%/h [{trend.low_pct:+.1f}, {trend.high_pct:+.1f}]"


def soak_table(analysis: SoakAnalysis) -> str:
    """The verdict, its reasons and one row per series: start level, slope, its interval, limit, drifting."""
    v = analysis.verdict
    kind = {"stable": "ok", "drifting": "bad", "inconclusive": "warn"}[v.verdict]
    lines = "".join(f"<li>{html.escape(reason)}</li>" for reason in v.reasons)
    head = (
        f"<div class='banner {kind}'><b>Soak: {html.escape(v.verdict)}</b> — phase {html.escape(v.phase)}, "
        f"{v.windows} windows of {v.window_s:g} s, {100 * v.confidence:g}% intervals"
        + (f"<ul>{lines}</ul>" if lines else "")
        + "</div>"
    )
    rows = []
    for name, trend in v.trends.items():
        title, unit, worse = SERIES[name]
        scale, label = _SCALE[unit]
        absolute = name == "error_rate"
        limit = (
            "—" if trend.limit is None else (f"{100 * trend.limit:g} points/h" if absolute else f"{trend.limit:g}%/h")
        )
        rows.append(
            f"<tr><td>{html.escape(title)}</td><td>{trend.start * scale:,.4g} {label}</td><td>{_slope(name, trend)}</td>"
            f"<td>{worse}</td><td>{limit}</td><td>{'<b>drifting</b>' if trend.drifting else 'no'}</td></tr>"
        )
    table = (
        "<table><tr><th>series</th><th>start</th><th>slope [interval]</th><th>hurts</th><th>limit</th>"
        "<th>drifting</th></tr>" + "".join(rows) + "</table>"
        if rows
        else ""
    )
    note = (
        "<p class='note'>Theil–Sen slope per hour with Sen's interval, relative to the trend line at the first "
        "window fitted; a series drifts when its whole interval lies beyond its limit in the direction that "
        "hurts (docs/soak.md). Every window is in soak.json.</p>"
    )
    return head + table + note
