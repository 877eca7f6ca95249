"""What a sweep found (``sweep.json``): each load level's figures, the knee, the capacity under the
SLO and the batching efficiency; and the report section that shows them.

Definitions (``docs/sweeps.md``):

- **Throughput** of a level: output tokens of the requests that *ended* while the level ran,
  divided by the level's duration (what the server delivered at that load, in steady state).
- **Elasticity** between two levels ``N1 < N2`` with throughputs ``X1``, ``X2``:
  ``g = ln(X2 / X1) / ln(N2 / N1)``, the slope of throughput against load on a log-log scale:
  1 when throughput grows in proportion to the load, 0 when it does not grow at all.
- **Knee**: the highest level ``N`` such that every step up to it, from the level below, has
  elasticity at least ``knee_gain`` (0.5 by default: beyond the knee, doubling the load buys
  less than a ``2**0.5`` = 41% gain); the load beyond which adding concurrency or rate mostly
  adds queueing, not throughput. ``None`` while no step has fallen below ``knee_gain``.
- **SLO attainment** of a level: the share of its requests that succeeded and met every SLO
  threshold (``loadgen.metrics.SloRule``). **Capacity under the SLO**: the highest level whose
  attainment is at least ``slo_target`` (default ``slo.percentile / 100``), as GuideLLM's
  ``goodput`` profile; ``None`` without SLOs.
- **Batching efficiency** of level ``N``: ``X(N) / ((N / N0) * X(N0))``, ``N0`` the lowest level
  (1 in an automatic concurrency sweep): how much of the proportional gain batching delivered.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib import pyplot as plt
from pydantic import BaseModel, ConfigDict, Field

from coordinator.results.figures import to_svg

RESULT_FILE = "sweep.json"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Level(_Model):
    """One load level of a sweep, as measured."""

    phase: str  # the step's phase name in the summary (``{sweep}.{i}-u{N}``)
    level: float  # users or requests/s
    duration_s: float
    requests: int
    errors: int
    output_tokens_per_s: float  # of requests that ended while the level ran
    requests_per_s: float
    slo_attainment: float | None = Field(description="share of requests good under the SLOs; None without SLOs")
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    tpot_p50_ms: float | None = None
    tpot_p99_ms: float | None = None
    server_running: float | None = Field(default=None, description="the server's running requests (its /metrics)")
    server_waiting: float | None = Field(default=None, description="the server's waiting requests (its /metrics)")
    server_kv_usage: float | None = None
    elasticity: float | None = Field(default=None, description="from the next lower level measured")
    batching_efficiency: float | None = None


class SweepResult(_Model):
    phase: str
    mode: str  # concurrency or rate
    knee_gain: float
    slo_target: float | None
    levels: list[Level] = Field(description="in the order they ran (bisection levels after the rising ones)")
    knee: float | None
    capacity: float | None
    stopped: str = Field(description="why the sweep stopped raising the load")

    def by_level(self) -> list[Level]:
        return sorted(self.levels, key=lambda lv: lv.level)


def elasticity(lower: Level, upper: Level) -> float | None:
    if lower.output_tokens_per_s <= 0 or upper.output_tokens_per_s <= 0 or upper.level <= lower.level:
        return None
    return math.log(upper.output_tokens_per_s / lower.output_tokens_per_s) / math.log(upper.level / lower.level)


def annotate(levels: Sequence[Level]) -> list[Level]:
    """Each level with its elasticity from the next lower one and its batching efficiency, by level."""
    ordered = sorted(levels, key=lambda lv: lv.level)
    if not ordered:
        return []
    base = ordered[0]
    out = [
        base.model_copy(update={"elasticity": None, "batching_efficiency": 1.0 if base.output_tokens_per_s else None})
    ]
    for lower, upper in itertools.pairwise(ordered):
        efficiency = None
        if base.output_tokens_per_s > 0:
            efficiency = upper.output_tokens_per_s / ((upper.level / base.level) * base.output_tokens_per_s)
        out.append(upper.model_copy(update={"elasticity": elasticity(lower, upper), "batching_efficiency": efficiency}))
    return out


def knee_of(levels: Sequence[Level], gain: float) -> float | None:
    """The knee (see the module docstring): None until throughput stopped growing with the load."""
    ordered = annotate(levels)
    for i in range(1, len(ordered)):
        g = ordered[i].elasticity
        if g is None or g < gain:
            return ordered[i - 1].level
    return None


def capacity_of(levels: Sequence[Level], target: float | None) -> float | None:
    """The highest level whose SLO attainment keeps ``target``, below the first that does not."""
    if target is None:
        return None
    best = None
    for level in sorted(levels, key=lambda lv: lv.level):
        if level.slo_attainment is None:
            return None
        if level.slo_attainment < target:
            break
        best = level.level
    return best


def render_section(run_dir: Path) -> str:
    """The report's sweep section: a table of the levels, the knee and the capacity (the report's
    figures draw throughput and latency against load)."""
    path = run_dir / RESULT_FILE
    if not path.exists():
        return ""
    result = SweepResult.model_validate_json(path.read_bytes())
    unit = "users" if result.mode == "concurrency" else "req/s"

    def num(value: float | None, digits: int = 1) -> str:
        return "–" if value is None else f"{value:,.{digits}f}"

    rows = "".join(
        f"<tr><td>{num(lv.level, 0 if result.mode == 'concurrency' else 2)}</td><td>{lv.requests:,}</td>"
        f"<td>{num(lv.output_tokens_per_s)}</td><td>{num(lv.requests_per_s, 2)}</td>"
        f"<td>{num(None if lv.slo_attainment is None else 100 * lv.slo_attainment)}</td>"
        f"<td>{num(lv.ttft_p50_ms)}</td><td>{num(lv.ttft_p99_ms)}</td><td>{num(lv.tpot_p50_ms)}</td>"
        f"<td>{num(lv.tpot_p99_ms)}</td><td>{num(lv.elasticity, 2)}</td><td>{num(lv.batching_efficiency, 2)}</td>"
        f"<td>{num(lv.server_running)}</td><td>{num(lv.server_waiting)}</td></tr>"
        for lv in result.by_level()
    )
    head = (
        f"<tr><th>{unit}</th><th>requests</th><th>out tok/s</th><th>req/s</th><th>SLO attained %</th>"
        "<th>TTFT p50</th><th>TTFT p99</th><th>TPOT p50</th><th>TPOT p99</th><th>elasticity</th>"
        "<th>batching efficiency</th><th>server running</th><th>server waiting</th></tr>"
    )
    knee = (
        "not reached"
        if result.knee is None
        else f"<b>{num(result.knee, 0 if result.mode == 'concurrency' else 2)} {unit}</b>"
    )
    capacity = (
        "no SLOs declared"
        if result.slo_target is None
        else (
            "below the lowest level"
            if result.capacity is None
            else f"<b>{num(result.capacity, 0 if result.mode == 'concurrency' else 2)} {unit}</b> "
            f"(SLO attainment at least {100 * result.slo_target:g}%)"
        )
    )
    figure = sweep_figure(result)
    return (
        f"<section id='sweep'><h2>Sweep {html.escape(result.phase)}</h2>"
        f"<p>Knee: {knee} (elasticity below {result.knee_gain:g} beyond it). Capacity under the SLO: {capacity}. "
        f"Stopped: {html.escape(result.stopped)}.</p>"
        + (
            f"<figure>{figure}<figcaption class='note'>Throughput and latency against load; the knee and the "
            "capacity marked.</figcaption></figure>"
            if figure
            else ""
        )
        + f"<div class='wrap'><table>{head}{rows}</table></div>"
        "<p class='note'>Throughput: output tokens of requests that ended while the level ran, per second. "
        "Elasticity: ln(X2/X1)/ln(N2/N1) from the next lower level. Latencies in ms over successful requests. "
        "Definitions: docs/sweeps.md.</p></section>"
    )


def sweep_figure(result: SweepResult) -> str | None:
    """Throughput (left) and TTFT/TPOT p50 and p99 (right) against the load level."""
    levels = result.by_level()
    if len(levels) < 2:
        return None
    x = [lv.level for lv in levels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.2), layout="constrained")
    left.plot(x, [lv.output_tokens_per_s for lv in levels], marker="o")
    left.set_xlabel("users" if result.mode == "concurrency" else "requests/s")
    left.set_ylabel("output tokens/s")
    for value, label, style in ((result.knee, "knee", "--"), (result.capacity, "capacity", ":")):
        if value is not None:
            for ax in (left, right):
                ax.axvline(value, linestyle=style, color="gray")
            left.annotate(label, (value, 0), textcoords="offset points", xytext=(3, 3), fontsize=8)
    for name, attr in (
        ("TTFT p50", "ttft_p50_ms"),
        ("TTFT p99", "ttft_p99_ms"),
        ("TPOT p50", "tpot_p50_ms"),
        ("TPOT p99", "tpot_p99_ms"),
    ):
        ys = [getattr(lv, attr) for lv in levels]
        if any(y is not None for y in ys):
            right.plot(x, [float("nan") if y is None else y for y in ys], marker=".", label=name)
    right.set_xlabel(left.get_xlabel())
    right.set_ylabel("ms")
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize=7)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
    return to_svg(fig)
