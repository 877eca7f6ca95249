"""``report.html``: one self-contained file (inline CSS and SVG, no script, no network).

It says first whether the result can be trusted (complete or partial, client saturated or
not), then the numbers per phase, then the figures, then exactly what ran and where.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from coordinator import registry
from coordinator.results import figures
from coordinator.results.columns import Mask, RecordColumns, as_columns
from coordinator.results.files import write_atomic
from coordinator.results.outcome import Outcome, RunOutcome
from coordinator.results.soak import SoakAnalysis
from coordinator.results.soak_report import read_soak, soak_figure, soak_table
from coordinator.results.summary import ALL, GroupSummary, LatencyStats, Summary
from coordinator.results.workers import WorkerEntry, read_workers, workers_table
from loadgen import metrics
from loadgen.records import OK, RequestRecord
from loadgen.samples import WorkerSample

PAGE_CSS = """  # the house style of finishline's pages (the run report, the matrix, the comparison)
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left;white-space:nowrap}
.banner{padding:.6rem 1rem;border-radius:6px;margin:.4rem 0}.ok{background:#e6f4ea}.warn{background:#fff4d6}.bad{background:#fde2e1}
pre{background:#f7f7f7;padding:.8rem;overflow:auto;font-size:.8rem}figure{margin:1rem 0}svg{max-width:100%;height:auto}
.note{color:#666;font-size:.85rem}.wrap{overflow-x:auto}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else _e(value)


def verdict(summary: Summary) -> str:
    """The run's outcome first: what the exit code says, with every reason (``coordinator.results.outcome``)."""
    outcome = summary.outcome
    if outcome is None:  # a summary written before outcomes existed
        return ""
    return verdict_banner(outcome)


def verdict_banner(outcome: RunOutcome, headline: str | None = None) -> str:
    """An outcome's banner: its headline (or ``headline``), its exit code, and every reason when
    there are several."""
    tone = "ok" if outcome.outcome is Outcome.OK else "bad"
    reasons = "".join(f"<li>{_e(r)}</li>" for r in outcome.reasons)
    return (
        f'<div class="banner verdict {tone}" id="verdict"><b>{_e(headline or outcome.headline)}</b> '
        f'<span class="note">(exit code {outcome.exit_code})</span>'
        + (f"<ul>{reasons}</ul>" if len(outcome.reasons) > 1 else "")
        + "</div>"
    )


_VERDICT = re.compile(r'<div class="banner verdict [a-z]+" id="verdict">.*?</div>', re.DOTALL)


def restate_verdict(path: Path, summary: Summary) -> None:
    """Rewrite a written report's verdict from ``summary`` (its outcome was decided after the
    report was drawn: by a comparison with a baseline), so the report and the exit code agree."""
    page = path.read_text()
    write_atomic(path, _VERDICT.sub(lambda _: verdict(summary), page, count=1))


def _losses(summary: Summary) -> str:
    losses = summary.losses
    if losses is None:
        return ""
    rows = "".join(
        f'<tr><td class="l">{_e(w.worker)}</td><td>{w.lost_after_s:,.1f}</td><td>{_e(w.exit_code)}</td>'
        f"<td>{_num(w.users)}</td><td>{_num(w.short_for_s)}</td><td>{w.records_lost:,}</td></tr>"
        for w in losses.workers_lost
    )
    table = (
        '<table><tr><th class="l">worker lost</th><th>after s</th><th>exit code</th><th>users</th>'
        f"<th>users short for s</th><th>records lost</th></tr>{rows}</table>"
        if rows
        else ""
    )
    return (
        f'<div class="banner warn"><b>{losses.records_lost:,} records lost</b>: requests begun whose record '
        f"never arrived, counted per worker ({_e(', '.join(f'{w}: {n}' for w, n in losses.by_worker.items()) or 'none')}).</div>"
        + table
    )


def _banners(summary: Summary) -> str:
    out = [verdict(summary), _losses(summary)]
    records = summary.run.records
    if records and not summary.all.count and summary.unmeasured_phases:
        out.append(
            f'<div class="banner warn"><b>Only warm-up traffic</b>: all {records:,} requests ran in warm-up '
            "phases, which the totals leave out; their numbers are in the warm-up rows below.</div>"
        )
    if summary.partial:
        out.append(
            f'<div class="banner warn"><b>Partial result</b>: {_e(summary.partial_reason or "")}. '
            "Every record that reached the collector is included"
            + ("; the ones lost are counted above." if summary.losses else ".")
            + "</div>"
        )
    else:
        out.append('<div class="banner ok"><b>Complete</b>: every phase ran to its end.</div>')
    if summary.valid:
        out.append('<div class="banner ok"><b>Valid</b>: the load generator was not saturated.</div>')
    else:
        reasons = "".join(f"<li>{_e(r)}</li>" for r in summary.invalid_reasons)
        out.append(
            f'<div class="banner bad"><b>Invalid</b>: the client, not the server, may have limited '
            f"these numbers.<ul>{reasons}</ul></div>"
        )
    return "\n".join(out)


_COLUMNS: tuple[tuple[str, str], ...] = (
    ("count", "requests"),
    ("ok", "ok"),
    ("errors", "errors"),
    ("retries", "retries"),
    ("requests_per_s", "req/s"),
    ("output_tokens_per_s", "out tok/s"),
)
_LAT: tuple[tuple[str, str], ...] = (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2e", "E2E"))


def _group_row(label: str, workload: str, g: GroupSummary) -> str:
    cells = [f'<td class="l">{_e(label)}</td><td class="l">{_e(workload)}</td>']
    cells += [f"<td>{_num(getattr(g, k), 2)}</td>" for k, _ in _COLUMNS]
    for key, _ in _LAT:
        s = g.latency_ms.get(key)
        cells.append(f"<td>{_num(s.p50)}</td><td>{_num(s.p99)}</td>")
    good = g.goodput
    share = "–" if good.share is None else f"{100 * good.share:.1f}%"
    cells.append(f"<td>{share}</td><td>{_num(good.per_s, 2)}</td>")
    return "<tr>" + "".join(cells) + "</tr>"


def results_table(summary: Summary) -> str:
    head = '<tr><th class="l" rowspan=2>phase</th><th class="l" rowspan=2>workload</th>'
    head += "".join(f"<th rowspan=2>{_e(t)}</th>" for _, t in _COLUMNS)
    head += "".join(f"<th colspan=2>{t} ms</th>" for _, t in _LAT)
    head += "<th colspan=2>goodput</th></tr><tr>"
    head += "<th>p50</th><th>p99</th>" * len(_LAT) + "<th>share</th><th>req/s</th></tr>"
    rows = []
    for phase in summary.phases_order:
        g = summary.phases[phase]
        label = f"{phase} (warm-up)" if phase in summary.unmeasured_phases else phase
        rows.append(_group_row(label, ALL, g))
        if len(g.workloads) > 1:
            rows += [_group_row("", w, sub) for w, sub in g.workloads.items()]
    rows.append(_group_row(_whole_run(summary), ALL, summary.all))
    rows += [_group_row("", w, sub) for w, sub in summary.all.workloads.items()]
    return f"<div class='wrap'><table>{head}{''.join(rows)}</table></div>"


def _whole_run(summary: Summary) -> str:
    """The totals' label says when warm-up phases are left out of them."""
    return "whole run, no warm-up" if summary.unmeasured_phases else "whole run"


def _records_line(summary: Summary) -> str:
    run = summary.run
    line = f"Target: <b>{_e(run.target)}</b> · records: <b>{_num(run.records)}</b>"
    warm = sum(summary.phases[p].count for p in summary.phases_order if p in summary.unmeasured_phases)
    if warm:
        line += f" ({warm:,} in warm-up phases, left out of the whole-run totals)"
    return f"<p>{line}</p>"


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

    return _e(json.dumps(cut(value), indent=2, default=str))


def _section(ident: str, title: str, *body: str) -> str:
    """A titled block with an id, so a reader can link to it (``report.html#errors``)."""
    return f"<section id='{ident}'><h2>{_e(title)}</h2>\n" + "\n".join(b for b in body if b) + "</section>"


# the percentile table's columns: (heading, the value of a LatencyStats)
_STATS: tuple[tuple[str, Callable[[LatencyStats], float | int | None]], ...] = (
    *((f"p{p:g}", lambda s, p=p: s.at(p)) for p in metrics.PERCENTILES),
    ("mean", lambda s: s.mean),
    ("min", lambda s: s.min),
    ("max", lambda s: s.max),
    ("n", lambda s: s.n),
)


def percentile_table(group: GroupSummary) -> str:
    head = '<tr><th class="l">metric (ms)</th>' + "".join(f"<th>{k}</th>" for k, _ in _STATS) + "</tr>"
    rows = []
    for name, stats in group.latency_ms.items():
        rows.append(
            f'<tr><td class="l">{_e(name)}</td>'
            + "".join(f"<td>{_num(value(stats), 2)}</td>" for _, value in _STATS)
            + "</tr>"
        )
    adjusted = group.latency_ms_failure_aware
    shown = adjusted.items() if adjusted is not None and adjusted.e2e.failed else []  # the same as above without
    for name, fa in shown:
        cells = [("∞" if fa.at(p) is None and fa.failed else _num(fa.at(p), 2)) for p in metrics.PERCENTILES]
        rows.append(
            f'<tr><td class="l">{_e(name)}, failures as ∞</td>'
            + "".join(f"<td>{c}</td>" for c in cells)
            + f"<td>–</td><td>–</td><td>–</td><td>{fa.n}</td></tr>"
        )
    note = (
        '<p class="note">"failures as ∞": percentiles over successful and failed requests, a failed one counted as '
        "infinitely slow (docs/metrics.md), so failing fast cannot look fast.</p>"
        if shown
        else ""
    )
    answer = group.latency_ms_answer
    reasoned = answer is not None and bool(group.reasoning_tokens)  # without reasoning: the rows above again
    for name, stats in answer.items() if answer is not None and reasoned else []:
        rows.append(
            f'<tr><td class="l">{_e(name)}</td>'
            + "".join(f"<td>{_num(value(stats), 2)}</td>" for _, value in _STATS)
            + "</tr>"
        )
    if reasoned:
        note += (
            f'<p class="note">Reasoning: {_num(group.reasoning_tokens)} of {_num(group.output_tokens)} output tokens '
            f"({_num(group.answer_tokens)} answer tokens). ttft, tpot and itl are over every output token; ttfot "
            "(time to first output token), tpot_answer and itl_answer over the answer alone (docs/metrics.md).</p>"
        )
    return f"<table>{head}{''.join(rows)}</table>{note}"


def slo_section(summary: Summary) -> str:
    if summary.slo is None:
        return '<p class="note">No SLOs declared: goodput counts every successful request.</p>'
    verdict = summary.all.slo
    rows = []
    for name, check in verdict.checks.items() if verdict is not None else ():
        met = {True: "met", False: "MISSED", None: "no data"}[check.met]
        rows.append(
            f'<tr><td class="l">{_e(name)}</td><td>p{check.percentile:g}</td><td>{_num(check.value_ms)}</td>'
            f'<td>{_num(check.limit_ms)}</td><td class="l">{met}</td></tr>'
        )
    return (
        '<table><tr><th class="l">SLO</th><th>at</th><th>value ms</th><th>limit ms</th><th class="l">verdict</th></tr>'
        + "".join(rows)
        + "</table>"
    )


def errors_table(summary: Summary) -> str:
    """Per phase and error class: requests that failed with it, and attempts that did (retried ones too)."""
    rows = []
    for phase in summary.phases_order:
        group = summary.phases[phase]
        attempts = group.attempts_by_class  # None in a summary written before attempts were counted
        classes = set(group.errors_by_class) | {c for c in attempts or () if c != OK}
        for cls in sorted(classes):
            tried = "–" if attempts is None else f"{attempts.get(cls, 0):,}"
            rows.append(
                f'<tr><td class="l">{_e(phase)}</td><td class="l">{_e(cls)}</td>'
                f"<td>{group.errors_by_class.get(cls, 0):,}</td><td>{tried}</td></tr>"
            )
    if not rows:
        return "<p>No failed requests.</p>"
    return (
        '<table><tr><th class="l">phase</th><th class="l">error class</th><th>requests</th>'
        "<th>attempts</th></tr>"
        + "".join(rows)
        + "</table>"
        + '<p class="note">requests: failed with this class in the end; attempts: every attempt that did, '
        "retried ones included (how often the server answered so).</p>"
    )


def _figure(svg: str | None, caption: str) -> str:
    if svg is None:
        return ""
    return f"<figure>{svg}<figcaption class='note'>{_e(caption)}</figcaption></figure>"


def _cdf_rows(summary: Summary, cols: RecordColumns) -> tuple[Mask, str]:
    """The CDFs show the same requests as the whole-run percentiles (warm-up left out)."""
    unmeasured = set(summary.unmeasured_phases)
    measured = ~cols.of_phases(unmeasured)
    if measured.any() or not cols.n:
        note = " Warm-up phases left out, as in the whole-run table." if unmeasured else ""
        return measured, f"Empirical CDF per workload, successful requests.{note}"
    return cols.everything(), "Empirical CDF per workload, successful requests (warm-up only: nothing else ran)."


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
    run = summary.run
    windows = run.phases
    title = f"finishline — {run.scenario} — {run.id}"
    extras = run.extras
    cols = as_columns(records)
    cdf_rows, cdf_caption = _cdf_rows(summary, cols)
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>",
        f"<style>{PAGE_CSS}</style></head><body><h1>{_e(title)}</h1>",
        _records_line(summary),
        _banners(summary),
        _section(
            "results",
            "Results per phase",
            results_table(summary),
            f"<p class='note'>{_e(summary.latency_note)}. Goodput: requests that succeeded and met every SLO.</p>",
        ),
        _section("slo", "SLOs", slo_section(summary)),
        _section(
            "latency",
            "Latency distributions",
            _figure(figures.latency_cdfs(cols, cdf_rows), cdf_caption),
            f"<h3>{_e(_whole_run(summary).capitalize())}, all percentiles</h3>",
            percentile_table(summary.all),
        ),
        _section(
            "over-time",
            "Over time",
            _figure(figures.over_time(cols, windows), "Each dot is one successful request; phases shaded."),
        ),
        _soak(soak),
        _section(
            "per-phase",
            "Throughput and latency per phase",
            _figure(figures.per_phase(summary), "Throughput and TTFT/TPOT percentiles of each phase."),
        ),
        _section(
            "errors", "Errors", errors_table(summary), _figure(figures.errors(summary), "Failed requests by class.")
        ),
        _section(
            "selfcheck",
            "Load generator health (self-check)",
            _figure(figures.client_health(samples), "Sampled every second on each worker."),
            f"<pre>{_json(None if summary.selfcheck is None else summary.selfcheck.model_dump(mode='json'))}</pre>",
        ),
        _workers(workers, summary),
    ]
    parts += [section for section in sections if section]  # e.g. coordinator.docker.report
    if extras:
        parts.append(_section("extras", "Other phase results", f"<pre>{_json(extras)}</pre>"))
    parts += [
        _section("scenario", "Scenario", f"<pre>{_e(scenario_yaml)}</pre>"),
        _section("environment", "Environment", f"<pre>{_e(environment)}</pre>"),
        "</body></html>",
    ]
    return "\n".join(parts)


def _soak(soak: SoakAnalysis | None) -> str:
    """The soak section (a scenario with ``soak``): the windowed series, their trends and the verdict."""
    if soak is None:
        return ""
    caption = f"Each dot is one {soak.verdict.window_s:g}-s window; the line its Theil–Sen trend (red: drifting)."
    return _section("soak", "Soak", soak_table(soak), _figure(soak_figure(soak), caption))


def _workers(workers: Sequence[WorkerEntry], summary: Summary) -> str:
    """Which worker ran where (``workers.json``), its records and its client health."""
    if not workers:
        return ""
    health = summary.selfcheck.workers if summary.selfcheck is not None else {}
    return _section(
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
    return [section for section in out if section]


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


def write_failure_report(path: Path, reason: str) -> Path:
    """``report.html`` of a run that ended before any request was measured (its target failed to start)."""
    title = "finishline: the run failed before any request was measured"
    page = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{PAGE_CSS}</style></head><body><h1>{_e(title)}</h1>"
        f"<div class='banner bad'><b>{_e(reason)}</b></div>"
        + "\n".join(feature_sections(path.parent))
        + "</body></html>"
    )
    return write_atomic(path, page)


def html_page(title: str, *body: str) -> str:
    """A whole self-contained page in the report's style, ``body`` in order (a matrix's report)."""
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{PAGE_CSS}</style></head><body><h1>{_e(title)}</h1>\n"
        + "\n".join(b for b in body if b)
        + "</body></html>"
    )
