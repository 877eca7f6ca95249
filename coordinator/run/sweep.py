"""The sweep phase: raise the load level by level, judging each as it ends, to find the knee and the
capacity under the SLO (definitions in ``coordinator.results.sweep`` and ``docs/sweeps.md``).

Each level is an ordinary Locust step (``{sweep}.{i}-u{N}`` or ``-r{R}``: a phase in the summary,
in baselines and comparisons, with its load level), run through the run's
:class:`~coordinator.run.context.LocustDriver`. Its records are watched as the collector takes
them (``records`` events): when a level ends, the load stays on for a moment while the records
of what ended inside its window arrive, then the level is measured and the next one chosen. At
each level's end the target's own ``/metrics`` is read for its running and waiting requests.

Automatic levels go up by ``factor`` from ``start`` until both the knee is passed (throughput's
elasticity fell below ``knee_gain``) and, with SLOs, the attainment fell below ``slo_target``,
or ``max_level``; then ``bisect`` levels are tried between the last two of each (geometric
midpoints; whole users for concurrency) so that the knee and the capacity are placed closer.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import numpy as np

from coordinator.plan.steps import ExternalStep, sweep_step
from coordinator.results.files import write_atomic
from coordinator.results.summary import PhaseWindow
from coordinator.results.sweep import RESULT_FILE, Level, SweepResult, annotate, capacity_of, knee_of
from coordinator.run.context import RunContext
from coordinator.run.events import RecordsCollected, StepProgress
from coordinator.run.progress import fmt_ms
from coordinator.run.serverstate import read_server_figures
from coordinator.run.targets import metrics_base
from coordinator.scenario.phases import SweepPhase
from loadgen import metrics
from loadgen.errors import UserError
from loadgen.metrics import SloRule

SETTLE_S = 1.0  # the load stays on this long after a level ends, while its last records arrive


class StepMeter:
    """What a sweep needs of its levels' records (collector thread), kept per record as a few numbers."""

    def __init__(self, prefix: str, rule: SloRule | None) -> None:
        self.prefix = prefix
        self.rule = rule
        self._lock = threading.Lock()
        # per record: phase, end (monotonic s), output tokens, ok, good, ttft s, tpot s
        self._rows: list[tuple[str, float, int, bool, bool, float, float]] = []

    def feed(self, event: RecordsCollected) -> None:
        rows = []
        for rec in event.records:
            if not rec.phase.startswith(self.prefix):
                continue
            values = metrics.request_values(rec)
            good = rec.ok and (self.rule is None or self.rule.good(rec, values))
            ttft, tpot = values["ttft"], values["tpot"]
            rows.append(
                (
                    rec.phase,
                    rec.end,
                    metrics.output_tokens(rec) if rec.ok else 0,
                    rec.ok,
                    good,
                    math.nan if ttft is None else ttft,
                    math.nan if tpot is None else tpot,
                )
            )
        with self._lock:
            self._rows.extend(rows)

    def level(self, phase: str, level: float, window: PhaseWindow, with_slo: bool) -> Level:
        start, end = window.start, window.end if window.end is not None else time.monotonic()
        duration = max(end - start, 1e-9)
        with self._lock:
            rows = list(self._rows)
        mine = [r for r in rows if r[0] == phase]
        ended_inside = [r for r in rows if start <= r[1] <= end]
        ok = [r for r in mine if r[3]]

        def pct(index: int, q: float) -> float | None:
            values = np.array([r[index] for r in ok], dtype=float)
            values = values[np.isfinite(values)] * 1000.0
            return float(np.percentile(values, q)) if values.size else None

        return Level(
            phase=phase,
            level=level,
            duration_s=duration,
            requests=len(mine),
            errors=len(mine) - len(ok),
            output_tokens_per_s=sum(r[2] for r in ended_inside) / duration,
            requests_per_s=len(ended_inside) / duration,
            slo_attainment=(sum(1 for r in mine if r[4]) / len(mine)) if with_slo and mine else None,
            ttft_p50_ms=pct(5, 50),
            ttft_p99_ms=pct(5, 99),
            tpot_p50_ms=pct(6, 50),
            tpot_p99_ms=pct(6, 99),
        )


def _midpoint(low: float, high: float, whole: bool) -> float | None:
    """The geometric midpoint of two levels; None when none is left between them."""
    mid = math.sqrt(low * high)
    if whole:
        mid = round(mid)
        if mid <= low or mid >= high:
            return None
    elif high / low < 1.02:
        return None
    return mid


def most_levels(phase: SweepPhase) -> int:
    """The most levels an automatic sweep runs: ``start`` times ``factor`` each level up to
    ``max_level``, then its bisection steps (it stops at the knee, most often well before)."""
    doublings = math.floor(math.log(phase.max_level / phase.start) / math.log(phase.factor) + 1e-9) + 1
    return max(1, doublings) + phase.bisect


def run_sweep(ctx: RunContext, step: ExternalStep) -> None:
    """The registered runner of ``sweep`` phases."""
    phase = SweepPhase.model_validate(step.spec)
    if ctx.locust is None:
        raise UserError(f"phases: {phase.name}: a sweep needs the Locust workers")
    driver = ctx.locust
    slo = ctx.scenario.slo
    rule = slo.rule() if slo is not None else None
    target = phase.slo_target if phase.slo_target is not None else (slo.percentile / 100.0 if slo is not None else None)
    meter = StepMeter(f"{phase.name}.", rule)
    ctx.events.records.add_listener(meter.feed)
    whole = not phase.open_loop
    measured: list[Level] = []
    index = 0
    listed = phase.users if phase.users is not None else phase.rates
    # levels it may run: those listed, or doublings (by ``factor``) up to max_level, then the bisection
    most = len(listed) if isinstance(listed, list) else most_levels(phase)
    step_s = phase.step_duration

    def run_level(level: float) -> Level:
        nonlocal index
        index += 1
        locust_step = sweep_step(phase, ctx.scenario.worker_count, level, index)
        window = driver.run(locust_step)
        server = read_server_figures(metrics_base(ctx.target_config.base_url)) if ctx.target_config else None
        time.sleep(SETTLE_S)  # the level's load goes on while its last records reach the collector
        value = float(
            locust_step.command.rate if phase.open_loop and locust_step.command.rate else locust_step.command.users
        )
        result = meter.level(locust_step.name, value, window, target is not None)
        if server is not None:
            result = result.model_copy(
                update={
                    "server_running": server.running,
                    "server_waiting": server.waiting,
                    "server_kv_usage": server.kv_usage,
                }
            )
        measured.append(result)
        unit = "requests/s" if phase.open_loop else "users"
        slo_share = "" if result.slo_attainment is None else f", SLO attainment {100 * result.slo_attainment:.0f}%"
        line = (
            f"{phase.name}: level {index} ({value:g} {unit}): {result.output_tokens_per_s:,.0f} output tok/s, "
            f"TTFT p99 {fmt_ms(result.ttft_p99_ms)} ms{slo_share}"
        )
        left = None if step_s is None else (step_s + SETTLE_S) * max(0, most - index)
        total = max(most, index)
        ctx.events.step_progress.fire(
            StepProgress(ctx, step.name, index, total, line, left, at_most=not isinstance(listed, list))
        )
        return result

    stopped = "every level listed ran"
    try:
        if isinstance(listed, list):
            for level in listed:
                if ctx.stop_requested.is_set():
                    stopped = "the run was stopped"
                    break
                run_level(float(level))
        else:
            level = phase.start
            while True:
                if ctx.stop_requested.is_set():
                    stopped = "the run was stopped"
                    break
                run_level(round(level) if whole else level)
                knee_passed = knee_of(measured, phase.knee_gain) is not None
                slo_broken = target is None or (measured[-1].slo_attainment or 0.0) < target
                if knee_passed and slo_broken:
                    stopped = "past the knee" + ("" if target is None else " and the SLO attainment")
                    break
                level *= phase.factor
                if level > phase.max_level:
                    stopped = f"max_level {phase.max_level:g} reached"
                    break
            _bisect(measured, phase, target, whole, run_level, ctx)
    finally:
        ctx.events.records.remove_listener(meter.feed)
        ran = [lv.phase for lv in measured]
        result = SweepResult(
            phase=phase.name,
            mode="rate" if phase.open_loop else "concurrency",
            knee_gain=phase.knee_gain,
            slo_target=target,
            levels=sorted(annotate(measured), key=lambda lv: ran.index(lv.phase)),
            knee=knee_of(measured, phase.knee_gain),
            capacity=capacity_of(measured, target),
            stopped=stopped,
        )
        write_atomic(ctx.run_dir / RESULT_FILE, result.model_dump_json(indent=2))
        ctx.extras[phase.name] = result.model_dump(mode="json")


def _bisect(
    measured: list[Level],
    phase: SweepPhase,
    target: float | None,
    whole: bool,
    run_level: Callable[[float], Level],
    ctx: RunContext,
) -> None:
    """Levels between the knee and the first level past it, then between the capacity and the first
    level that missed the SLO, ``phase.bisect`` times each."""
    for _ in range(phase.bisect):
        if ctx.stop_requested.is_set():
            return
        ordered = annotate(measured)
        knee = knee_of(measured, phase.knee_gain)
        if knee is None:
            break
        above = next((lv.level for lv in ordered if lv.level > knee), None)
        mid = None if above is None else _midpoint(knee, above, whole)
        if mid is None:
            break
        run_level(mid)
    for _ in range(phase.bisect if target is not None else 0):
        if ctx.stop_requested.is_set():
            return
        capacity = capacity_of(measured, target)
        ordered = sorted(measured, key=lambda lv: lv.level)
        failing = next((lv.level for lv in ordered if (lv.slo_attainment or 0.0) < (target or 0.0)), None)
        if capacity is None or failing is None:
            break
        mid = _midpoint(capacity, failing, whole)
        if mid is None:
            break
        run_level(mid)
