"""``report.html``: one self-contained file (inline CSS and SVG, no script, no network).

It says first whether the result can be trusted (complete or partial, client saturated or
not), then the numbers per phase, then the figures, then exactly what ran and where.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coordinator.results import figures
from coordinator.results.summary import ALL
from loadgen.records import RequestRecord

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
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


def _banners(summary: dict[str, Any]) -> str:
    out = []
    if summary.get("partial"):
        out.append(f'<div class="banner warn"><b>Partial result</b>: {_e(summary.get("partial_reason") or "")}. '
                   "Every record measured before the stop is included.</div>")
    else:
        out.append('<div class="banner ok"><b>Complete</b>: every phase ran to its end.</div>')
    if summary.get("valid", True):
        out.append('<div class="banner ok"><b>Valid</b>: the load generator was not saturated.</div>')
    else:
        reasons = "".join(f"<li>{_e(r)}</li>" for r in summary.get("invalid_reasons", []))
        out.append(f'<div class="banner bad"><b>Invalid</b>: the client, not the server, may have limited '
                   f"these numbers.<ul>{reasons}</ul></div>")
    return "\n".join(out)


_COLUMNS: tuple[tuple[str, str], ...] = (
    ("count", "requests"), ("ok", "ok"), ("errors", "errors"), ("retries", "retries"),
    ("requests_per_s", "req/s"), ("output_tokens_per_s", "out tok/s"),
)
_LAT: tuple[tuple[str, str], ...] = (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2e", "E2E"))


def _group_row(label: str, workload: str, g: dict[str, Any]) -> str:
    cells = [f'<td class="l">{_e(label)}</td><td class="l">{_e(workload)}</td>']
    cells += [f"<td>{_num(g[k], 2)}</td>" for k, _ in _COLUMNS]
    for key, _ in _LAT:
        s = g["latency_ms"][key]
        cells.append(f"<td>{_num(s['p50'])}</td><td>{_num(s['p99'])}</td>")
    good = g["goodput"]
    share = "–" if good["share"] is None else f"{100 * good['share']:.1f}%"
    cells.append(f"<td>{share}</td><td>{_num(good['per_s'], 2)}</td>")
    return "<tr>" + "".join(cells) + "</tr>"


def results_table(summary: dict[str, Any]) -> str:
    head = '<tr><th class="l" rowspan=2>phase</th><th class="l" rowspan=2>workload</th>'
    head += "".join(f"<th rowspan=2>{_e(t)}</th>" for _, t in _COLUMNS)
    head += "".join(f"<th colspan=2>{t} ms</th>" for _, t in _LAT)
    head += "<th colspan=2>goodput</th></tr><tr>"
    head += "<th>p50</th><th>p99</th>" * len(_LAT) + "<th>share</th><th>req/s</th></tr>"
    rows = []
    unmeasured = set(summary.get("unmeasured_phases", []))
    for phase in summary["phases_order"]:
        g = summary["phases"][phase]
        label = f"{phase} (warm-up)" if phase in unmeasured else phase
        rows.append(_group_row(label, ALL, g))
        if len(g["workloads"]) > 1:
            rows += [_group_row("", w, sub) for w, sub in g["workloads"].items()]
    rows.append(_group_row("whole run", ALL, summary[ALL]))
    rows += [_group_row("", w, sub) for w, sub in summary[ALL]["workloads"].items()]
    return f"<div class='wrap'><table>{head}{''.join(rows)}</table></div>"


def percentile_table(group: dict[str, Any]) -> str:
    keys = ("p50", "p90", "p95", "p99", "p99.9", "mean", "min", "max", "n")
    head = '<tr><th class="l">metric (ms)</th>' + "".join(f"<th>{k}</th>" for k in keys) + "</tr>"
    rows = []
    for name, stats in group["latency_ms"].items():
        rows.append(f'<tr><td class="l">{_e(name)}</td>' + "".join(f"<td>{_num(stats[k], 2)}</td>" for k in keys) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def slo_section(summary: dict[str, Any]) -> str:
    slo = summary.get("slo")
    if not slo:
        return '<p class="note">No SLOs declared: goodput counts every successful request.</p>'
    verdict = summary[ALL].get("slo", {})
    rows = []
    for name, check in verdict.get("checks", {}).items():
        met = {True: "met", False: "MISSED", None: "no data"}[check["met"]]
        rows.append(f'<tr><td class="l">{_e(name)}</td><td>p{check["percentile"]:g}</td><td>{_num(check["value_ms"])}</td>'
                    f'<td>{_num(check["limit_ms"])}</td><td class="l">{met}</td></tr>')
    return ('<table><tr><th class="l">SLO</th><th>at</th><th>value ms</th><th>limit ms</th><th class="l">verdict</th></tr>'
            + "".join(rows) + "</table>")


def errors_table(summary: dict[str, Any]) -> str:
    rows = []
    for phase in summary["phases_order"]:
        for cls, n in summary["phases"][phase]["errors_by_class"].items():
            rows.append(f'<tr><td class="l">{_e(phase)}</td><td class="l">{_e(cls)}</td><td>{n:,}</td></tr>')
    if not rows:
        return "<p>No failed requests.</p>"
    return '<table><tr><th class="l">phase</th><th class="l">error class</th><th>requests</th></tr>' + "".join(rows) + "</table>"


def _figure(svg: str | None, caption: str) -> str:
    if svg is None:
        return ""
    return f"<figure>{svg}<figcaption class='note'>{_e(caption)}</figcaption></figure>"


def render(summary: dict[str, Any], records: Sequence[RequestRecord], samples: Sequence[dict[str, Any]],
           scenario_yaml: str = "", environment: str = "", sections: Sequence[str] = ()) -> str:
    run = summary.get("run", {})
    windows = run.get("phases", [])
    title = f"finishline — {run.get('scenario', '')} — {run.get('id', '')}"
    extras = run.get("extras") or {}
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>",
        f"<p>Target: <b>{_e(run.get('target'))}</b> · records: <b>{_num(run.get('records'))}</b></p>",
        _banners(summary),
        "<h2>Results per phase</h2>", results_table(summary),
        f"<p class='note'>{_e(summary.get('latency_note', ''))}. Goodput: requests that succeeded and met every SLO.</p>",
        "<h2>SLOs</h2>", slo_section(summary),
        "<h2>Latency distributions</h2>", _figure(figures.latency_cdfs(records), "Empirical CDF per workload."),
        "<h3>Whole run, all percentiles</h3>", percentile_table(summary[ALL]),
        "<h2>Over time</h2>", _figure(figures.over_time(records, windows), "Each dot is one successful request."),
        "<h2>Throughput and latency per phase</h2>", _figure(figures.per_phase(summary), ""),
        "<h2>Errors</h2>", errors_table(summary), _figure(figures.errors(summary), "Failed requests by class."),
        "<h2>Load generator health (self-check)</h2>",
        _figure(figures.client_health(samples), "Sampled every second on each worker."),
        f"<pre>{_e(json.dumps(summary.get('selfcheck'), indent=2))}</pre>",
    ]
    parts += [section for section in sections if section]  # e.g. coordinator.docker.report
    if extras:
        parts += ["<h2>Other phase results</h2>", f"<pre>{_e(json.dumps(extras, indent=2, default=str))}</pre>"]
    parts += [
        "<h2>Scenario</h2>", f"<pre>{_e(scenario_yaml)}</pre>",
        "<h2>Environment</h2>", f"<pre>{_e(environment)}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(path: Path, summary: dict[str, Any], records: Sequence[RequestRecord],
                 samples: Sequence[dict[str, Any]], scenario_yaml: str = "", environment: str = "") -> Path:
    from coordinator.docker.report import render_container_section  # cold starts, container stats

    sections = [render_container_section(path.parent)]
    path.write_text(render(summary, records, samples, scenario_yaml, environment, sections))
    return path
