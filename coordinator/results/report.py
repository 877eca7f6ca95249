"""``report.html``: one self-contained file (inline CSS and SVG, no script, no network).

It opens with the verdict (:mod:`coordinator.results.verdict`): the outcome and exit code, the
figures a reader came for, each SLO, valid or not, complete or not, and the comparison with a
baseline. Then the figures (latency CDFs, over time, the soak, per phase, what features add: a
sweep's curves, cold-start steps), then the tables (:mod:`coordinator.results.report_tables`),
then exactly what ran and where.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from coordinator import registry
from coordinator.results import figures
from coordinator.results.columns import Mask, RecordColumns, as_columns
from coordinator.results.files import write_atomic
from coordinator.results.outcome import RunOutcome
from coordinator.results.page import esc, figure, html_page, section
from coordinator.results.report_tables import (
    errors_table,
    percentile_table,
    results_table,
    selfcheck_table,
    slo_table,
    whole_run,
)
from coordinator.results.soak import SoakAnalysis
from coordinator.results.soak_report import read_soak, soak_figure, soak_table
from coordinator.results.summary import Summary
from coordinator.results.verdict import failure_verdict, verdict_section
from coordinator.results.workers import WorkerEntry, read_workers, workers_table
from loadgen.records import RequestRecord
from loadgen.samples import WorkerSample


def _json(value: Any) -> str:
    """Indented JSON with floats cut to 3 decimals: 66.589 ms, not 66.5894244098081."""

    def cut(v: Any) -> Any:
        if isinstance(v, float):
            return round(v, 3)
        if isinstance(v, dict):
            return {k: cut(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [cut(x) for x in v]
        return v

    return esc(json.dumps(cut(value), indent=2, default=str))


def _cdf_rows(summary: Summary, cols: RecordColumns) -> tuple[Mask, str]:
    """The CDFs show the same requests as the whole-run percentiles (warm-up left out)."""
    unmeasured = set(summary.unmeasured_phases)
    measured = ~cols.of_phases(unmeasured)
    if measured.any() or not cols.n:
        note = " Warm-up phases left out, as in the whole-run table." if unmeasured else ""
        return measured, f"Empirical CDF per workload, successful requests.{note}"
    return cols.everything(), "Empirical CDF per workload, successful requests (warm-up only: nothing else ran)."


def _part(title: str) -> str:
    return f"<h2 class='part'>{esc(title)}</h2>"


def _figures(
    summary: Summary,
    cols: RecordColumns,
    samples: Sequence[WorkerSample],
    sections: Sequence[str],
    soak: SoakAnalysis | None,
) -> list[str]:
    """The figures, each in its section: the latency CDFs, over time, the soak, per phase, what
    features add (a sweep, cold starts), the failed requests and the client's health."""
    cdf_rows, cdf_caption = _cdf_rows(summary, cols)
    failures = figures.errors(summary)
    return [
        _part("Figures"),
        section("latency", "Latency distributions", figure(figures.latency_cdfs(cols, cdf_rows), cdf_caption)),
        section(
            "over-time",
            "Over time",
            figure(figures.over_time(cols, summary.run.phases), "Each dot is one successful request; phases shaded."),
        ),
        _soak(soak),
        section(
            "per-phase",
            "Throughput and latency per phase",
            figure(figures.per_phase(summary), "Throughput and TTFT/TPOT percentiles of each phase."),
        ),
        *(s for s in sections if s),  # e.g. coordinator.docker.report, coordinator.results.sweep
        section("failures", "Failed requests", figure(failures, "Failed requests by class (the table: Errors)."))
        if failures is not None
        else "",
        section(
            "client-health",
            "Load generator health",
            figure(figures.client_health(samples), "Sampled every second on each worker (the table: Self-check)."),
        )
        if samples
        else "",
    ]


def _tables(summary: Summary, workers: Sequence[WorkerEntry], scenario_yaml: str, environment: str) -> list[str]:
    """The tables, then what ran and where."""
    extras = summary.run.extras
    return [
        _part("Tables"),
        section(
            "results",
            "Results per phase",
            results_table(summary),
            f"<p class='note'>{esc(summary.latency_note)}. Goodput: requests that succeeded and met every SLO.</p>",
        ),
        section("percentiles", f"{whole_run(summary).capitalize()}, all percentiles", percentile_table(summary.all)),
        section("slo", "SLOs", slo_table(summary)),
        section("errors", "Errors", errors_table(summary)),
        section("selfcheck", "Load generator health (self-check)", selfcheck_table(summary.selfcheck)),
        _workers(workers, summary),
        section("extras", "Other phase results", f"<pre>{_json(extras)}</pre>") if extras else "",
        section("scenario", "Scenario", f"<pre>{esc(scenario_yaml)}</pre>"),
        section("environment", "Environment", f"<pre>{esc(environment)}</pre>"),
    ]


def render(
    summary: Summary,
    records: RecordColumns | Iterable[RequestRecord],
    samples: Sequence[WorkerSample],
    scenario_yaml: str = "",
    environment: str = "",
    sections: Sequence[str] = (),
    workers: Sequence[WorkerEntry] = (),
    soak: SoakAnalysis | None = None,
) -> str:
    """The whole page; ``sections``: the features' HTML, among the figures."""
    run = summary.run
    cols = as_columns(records)
    return html_page(
        f"finishline — {run.scenario} — {run.id}",
        verdict_section(summary),
        *_figures(summary, cols, samples, sections, soak),
        *_tables(summary, workers, scenario_yaml, environment),
    )


def _soak(soak: SoakAnalysis | None) -> str:
    """The soak section (a scenario with ``soak``): the windowed series, their trends and the verdict."""
    if soak is None:
        return ""
    caption = f"Each dot is one {soak.verdict.window_s:g}-s window; the line its Theil–Sen trend (red: drifting)."
    return section("soak", "Soak", figure(soak_figure(soak), caption), soak_table(soak))


def _workers(workers: Sequence[WorkerEntry], summary: Summary) -> str:
    """Which worker ran where (``workers.json``), its records and its client health."""
    if not workers:
        return ""
    health = summary.selfcheck.workers if summary.selfcheck is not None else {}
    return section(
        "workers",
        "Workers",
        workers_table(workers, health),
        "<p class='note'>Where each worker ran and what it ran; CPU and loop lag from its samples "
        "(the self-check's figures); lost: when the run saw it go mid-run.</p>",
    )


def feature_sections(run_dir: Path) -> list[str]:
    """The HTML each feature adds for this run (``coordinator.registry``: report sections)."""
    out = []
    for ref in registry.report_sections():
        render_section: Callable[[Path], str] = ref.load()
        out.append(render_section(run_dir))
    return [s for s in out if s]


def write_report(
    path: Path,
    summary: Summary,
    records: RecordColumns | Iterable[RequestRecord],
    samples: Sequence[WorkerSample],
    scenario_yaml: str = "",
    environment: str = "",
) -> Path:
    """``records``: the run's columns, or records in hand."""
    page = render(
        summary,
        records,
        samples,
        scenario_yaml,
        environment,
        feature_sections(path.parent),
        workers=read_workers(path.parent),
        soak=read_soak(path.parent),
    )
    return write_atomic(path, page)


def write_failure_report(path: Path, reason: str, outcome: RunOutcome | None = None) -> Path:
    """``report.html`` of a run that ended before any request was measured (its target failed to
    start): its verdict (``outcome``, with the exit code, when given; else ``reason``), then what
    features add (a container's log)."""
    return write_atomic(
        path,
        html_page(
            "finishline: the run failed before any request was measured",
            failure_verdict(reason, outcome),
            *feature_sections(path.parent),
        ),
    )
