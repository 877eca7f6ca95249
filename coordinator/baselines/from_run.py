"""A finishline run directory as a baseline: its summary's steps, its records, what its target was.

Steps are the run's measured phases (warm-ups and the pre-flight request left out, as in the
totals), each as a whole (workload ``all``) and per workload when there are several; a
cold-start phase's result is a step of its own. Figures come from the summary (exact, over
the records), per-request values from the records file, so comparisons bootstrap over them.
"""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from coordinator.baselines.model import (
    Baseline,
    Load,
    LoadKind,
    MetricStats,
    Provenance,
    Step,
    TargetInfo,
    Tool,
)
from coordinator.baselines.samples import StepSamples, from_columns
from coordinator.plan.steps import LocustStep, Plan
from coordinator.results.coldstart import RESULT_FILE as COLD_START_FILE
from coordinator.results.coldstart import ColdStartResult
from coordinator.results.columns import read_columns
from coordinator.results.identity import read_identity
from coordinator.results.slo import Slo
from coordinator.results.summary import GroupSummary, LatencyStats, Summary, read_summary
from coordinator.results.sweep import RESULT_FILE as SWEEP_FILE
from coordinator.results.sweep import SweepResult
from loadgen.errors import UserError

LATENCY_METRICS: tuple[str, ...] = ("ttft", "tpot", "itl", "e2e")


def latency_stats(stats: LatencyStats, provenance: Provenance = Provenance.RECORDS) -> MetricStats:
    return MetricStats(
        unit="ms",
        n=stats.n,
        mean=stats.mean,
        p50=stats.p50,
        p90=stats.p90,
        p95=stats.p95,
        p99=stats.p99,
        p99_9=stats.p99_9,
        provenance=provenance,
    )


def rate(value: float | None, n: int) -> MetricStats:
    return MetricStats(unit="per_s", n=n, mean=value, provenance=Provenance.RECORDS)


def group_metrics(group: GroupSummary) -> dict[str, MetricStats]:
    """A summary group's figures under finishline's metric names."""
    out = {name: latency_stats(group.latency_ms.get(name)) for name in LATENCY_METRICS}
    answer = group.latency_ms_answer
    if answer is not None and answer.ttfot.n:  # a reasoning model's first answer token
        out["ttfot"] = latency_stats(answer.ttfot)
    adjusted = group.latency_ms_failure_aware
    for name, fa in adjusted.items() if adjusted is not None else ():

        def value(q: float | None, failed: int = fa.failed) -> float | None:
            return math.inf if q is None and failed else q  # None with failures: the percentile reached them

        out[f"{name}_failure_aware"] = MetricStats(
            unit="ms",
            n=fa.n,
            p50=value(fa.p50),
            p90=value(fa.p90),
            p95=value(fa.p95),
            p99=value(fa.p99),
            p99_9=value(fa.p99_9),
            provenance=Provenance.RECORDS,
            note=f"{fa.failed} failed requests counted as infinitely slow" if fa.failed else None,
        )
    out["output_tokens_per_s"] = rate(group.output_tokens_per_s, group.count)
    out["requests_per_s"] = rate(group.requests_per_s, group.count)
    out["goodput_per_s"] = rate(group.goodput.per_s, group.count)
    out["error_rate"] = MetricStats(
        unit="share",
        n=group.count,
        mean=(group.errors / group.count) if group.count else None,
        provenance=Provenance.RECORDS,
    )
    return out


def _loads(run_dir: Path) -> dict[str, Load]:
    """Each Locust step's load level, from the plan the run kept."""
    path = run_dir / "plan.json"
    if not path.exists():
        return {}
    plan = Plan.model_validate_json(path.read_bytes())
    out = {}
    for step in plan.steps:
        if isinstance(step, LocustStep):
            command = step.command
            if command.mode == "open":
                out[step.name] = Load(kind=LoadKind.RATE, value=command.rate, label=step.phase_kind)
            else:
                out[step.name] = Load(kind=LoadKind.CONCURRENCY, value=float(command.users), label=step.phase_kind)
    sweep = run_dir / SWEEP_FILE  # a sweep's levels are chosen as it runs: they are in its result, not the plan
    if sweep.exists():
        result = SweepResult.model_validate_json(sweep.read_bytes())
        kind = LoadKind.RATE if result.mode == "rate" else LoadKind.CONCURRENCY
        for level in result.levels:
            out[level.phase] = Load(kind=kind, value=level.level, label="sweep")
    return out


def steps_of(summary: Summary, loads: dict[str, Load]) -> list[Step]:
    """The measured phases of a summary as steps (and per workload when there are several)."""
    out = []
    skipped = set(summary.unmeasured_phases)
    for phase in summary.phases_order:
        if phase in skipped:
            continue
        group = summary.phases[phase]
        parts: list[tuple[str, GroupSummary]] = [("all", group)]
        if len(group.workloads) > 1:
            parts += sorted(group.workloads.items())
        for workload, part in parts:
            out.append(
                Step(
                    name=phase,
                    workload=workload,
                    load=loads.get(phase),
                    requests=part.count,
                    errors=part.errors,
                    errors_by_class=dict(part.errors_by_class),
                    duration_s=part.duration_s,
                    metrics=group_metrics(part),
                    has_samples=True,
                    samples_key=phase,
                )
            )
    return out


def cold_start_step(run_dir: Path) -> Step | None:
    """A Docker target's cold starts as a step: each step of the start, cold and warm TTFT, the penalty."""
    path = run_dir / COLD_START_FILE
    if not path.exists():
        return None
    result = ColdStartResult.model_validate_json(path.read_bytes())

    def ms(values: list[float]) -> MetricStats:
        arr = np.asarray(values, dtype=float) * 1000.0
        if not arr.size:
            return MetricStats(unit="ms", n=0, provenance=Provenance.RECORDS)
        p50, p90, p95, p99 = (float(np.percentile(arr, q)) for q in (50, 90, 95, 99))
        return MetricStats(
            unit="ms",
            n=int(arr.size),
            mean=float(arr.mean()),
            p50=p50,
            p90=p90,
            p95=p95,
            p99=p99,
            provenance=Provenance.RECORDS,
        )

    metrics = {f"cold_start.{name}": ms(values) for name, values in result.steps.items()}
    metrics["cold_start.cold_ttft"] = ms(result.cold_ttft)
    metrics["cold_start.warm_ttft"] = ms(result.warm_ttft)
    if result.cold_penalty is not None:
        metrics["cold_start.cold_penalty"] = MetricStats(
            unit="ms", n=len(result.starts), mean=result.cold_penalty * 1000.0, provenance=Provenance.RECORDS
        )
    return Step(
        name=result.phase,
        load=Load(kind=LoadKind.COLD_START, value=float(len(result.starts)), label="cold_start"),
        requests=len(result.starts),
        metrics=metrics,
    )


def step_samples(records: Path, steps: list[Step], slo: Slo | None) -> dict[tuple[str, str], StepSamples]:
    """Per-request values of each step with samples, from a run's records file, by (samples key,
    workload); ``slo``: the run's, so goodput resamples what its summary counted as good."""
    wanted = [s for s in steps if s.has_samples and s.samples_key is not None]
    if not wanted or not records.exists():
        return {}
    columns = read_columns(records)
    values = columns.values
    good = columns.ok if slo is None else slo.rule().good_all(columns.ok, values)
    out = {}
    for step in wanted:
        assert step.samples_key is not None
        rows = columns.of_phase(step.samples_key)
        if step.workload != "all":
            code = columns.workloads.index(step.workload) if step.workload in columns.workloads else -1
            rows = rows & (columns.workload == code)
        out[(step.samples_key, step.workload)] = from_columns(columns, rows, step.duration_s, good)
    return out


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def target_info(run_dir: Path) -> TargetInfo:
    """What the run's target was, from what the run directory kept."""
    scenario: dict[str, Any] = {}
    with contextlib.suppress(OSError, yaml.YAMLError):
        scenario = yaml.safe_load((run_dir / "scenario.yaml").read_text()) or {}
    target: dict[str, Any] = scenario.get("target") or {}
    identity = read_identity(run_dir)
    containers = _json(run_dir / "container.json") or []
    last = containers[-1] if containers else {}
    kind = target.get("kind")
    return TargetInfo(
        kind=kind,
        label=target.get("name") or (identity.base_url if identity is not None else None),
        base_url=identity.base_url if identity is not None else target.get("base_url"),
        model=target.get("model"),
        served_models=identity.models if identity is not None else [],
        server=(identity.server or identity.owned_by) if identity is not None else None,
        image=target.get("image") if kind == "docker" else None,
        image_id=last.get("image_id") or last.get("id"),
        command=target.get("command"),
        limits={k: target[k] for k in ("cpus", "cpuset", "memory") if target.get(k) is not None},
        simulator={k: target[k] for k in ("preset", "config", "settings") if target.get(k) is not None}
        if kind == "simulator"
        else None,
    )


def baseline_from_run(run_dir: Path, name: str, description: str = "") -> Baseline:
    """The baseline of a finished run directory (its summary must exist)."""
    if not (run_dir / "summary.json").exists():
        raise UserError(f"{run_dir}: no summary.json; give a finished run's directory (or `finishline recover` it)")
    summary = read_summary(run_dir / "summary.json")
    steps = steps_of(summary, _loads(run_dir))
    cold = cold_start_step(run_dir)
    if cold is not None:
        steps.append(cold)
    environment = _json(run_dir / "environment.json") or {}
    scenario_path = run_dir / "scenario.yaml"
    warnings = []
    if summary.outcome is not None and summary.outcome.exit_code != 0:
        warnings.append(f"the run's outcome was {summary.outcome.headline}")
    return Baseline(
        name=name,
        created=datetime.now(UTC),
        tool=Tool.FINISHLINE,
        tool_version=environment.get("finishline"),
        source=str(run_dir),
        description=description,
        target=target_info(run_dir),
        environment=environment,
        scenario=scenario_path.read_text() if scenario_path.exists() else None,
        summary=summary,
        steps=steps,
        warnings=warnings,
    )
