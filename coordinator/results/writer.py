"""Write a run's results: ``summary.json``, ``summary.csv`` and ``report.html``, from the records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coordinator.collector import Collector
from coordinator.results.report import write_report
from coordinator.results.summary import SloSpec, summarize
from coordinator.results.table import write_csv
from coordinator.run.context import RunContext
from coordinator.selfcheck import evaluate


def slo_spec(ctx: RunContext) -> SloSpec | None:
    slo = ctx.scenario.slo
    if slo is None:
        return None
    return SloSpec(ttft_ms=slo.ttft_ms, tpot_ms=slo.tpot_ms, e2e_ms=slo.e2e_ms, percentile=slo.percentile)


def write_results(
    ctx: RunContext,
    collector: Collector,
    status: str,
    reason: str | None,
    unmeasured: frozenset[str],
) -> dict[str, Any]:
    """Summarise every record the collector wrote (``unmeasured``: the plan's warm-up steps); returns the summary."""
    records = collector.records()
    samples = collector.samples()
    check = evaluate(samples, records, ctx.scenario.selfcheck)
    run_info = {
        "id": ctx.run_id,
        "scenario": ctx.scenario.name,
        "target": ctx.target_config.label if ctx.target_config else None,
        "started_wall": ctx.started_wall,
        "phases": [{"name": w.name, "start": w.start, "end": w.end} for w in ctx.windows],
        "records": len(records),
        "extras": ctx.extras,
    }
    summary = summarize(
        records,
        ctx.windows,
        slo_spec(ctx),
        partial=status == "partial",
        partial_reason=reason,
        selfcheck=check,
        run=run_info,
        unmeasured=unmeasured,
    )
    out: Path = ctx.run_dir
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    write_csv(summary, out / "summary.csv")
    write_report(
        out / "report.html",
        summary,
        records,
        samples,
        scenario_yaml=_read(out / "scenario.yaml"),
        environment=_read(out / "environment.json"),
    )
    return summary


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
