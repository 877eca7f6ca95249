"""The report's tables: results per phase, every percentile, the SLOs, the errors and the self-check.

Each table is drawn from ``summary.json`` alone, so a report drawn again from a kept summary
shows the same numbers. Headings wrap and cells are short, so every table fits the page on
screen (1,200 px) and on A4.
"""

from __future__ import annotations

from collections.abc import Callable

from coordinator.results.page import esc, num
from coordinator.results.selfcheck import SelfCheckResult
from coordinator.results.summary import ALL, GroupSummary, LatencyStats, Summary
from loadgen import metrics
from loadgen.records import OK

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("count", "requests"),
    ("ok", "ok"),
    ("errors", "errors"),
    ("retries", "retries"),
    ("requests_per_s", "req/s"),
    ("output_tokens_per_s", "out tok/s"),
)
_LAT: tuple[tuple[str, str], ...] = (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2e", "E2E"))


def whole_run(summary: Summary) -> str:
    """The totals' label says when warm-up phases are left out of them."""
    return "whole run, no warm-up" if summary.unmeasured_phases else "whole run"


def _throughput_row(label: str, workload: str, g: GroupSummary) -> str:
    cells = [f'<td class="l">{esc(label)}</td><td class="l">{esc(workload)}</td>']
    cells += [f"<td>{num(getattr(g, k), 2)}</td>" for k, _ in _COLUMNS]
    good = g.goodput
    share = "–" if good.share is None else f"{100 * good.share:.1f}%"
    cells.append(f"<td>{share}</td><td>{num(good.per_s, 2)}</td>")
    return "<tr>" + "".join(cells) + "</tr>"


def _latency_row(label: str, workload: str, g: GroupSummary) -> str:
    cells = [f'<td class="l">{esc(label)}</td><td class="l">{esc(workload)}</td>']
    for key, _ in _LAT:
        s = g.latency_ms.get(key)
        cells.append(f"<td>{num(s.p50)}</td><td>{num(s.p99)}</td>")
    return "<tr>" + "".join(cells) + "</tr>"


def _groups(summary: Summary) -> list[tuple[str, str, GroupSummary]]:
    """The rows of the results: each phase (warm-ups marked), each of its workloads when it ran
    several, then the whole run and each workload of it."""
    rows: list[tuple[str, str, GroupSummary]] = []
    for phase in summary.phases_order:
        g = summary.phases[phase]
        label = f"{phase} (warm-up)" if phase in summary.unmeasured_phases else phase
        rows.append((label, ALL, g))
        if len(g.workloads) > 1:
            rows += [("", w, sub) for w, sub in g.workloads.items()]
    rows.append((whole_run(summary), ALL, summary.all))
    rows += [("", w, sub) for w, sub in summary.all.workloads.items()]
    return rows


def results_table(summary: Summary) -> str:
    """Two tables of the same rows (:func:`_groups`), so that each fits a page: the counts,
    rates and goodput, then the latencies' p50 and p99."""
    groups = _groups(summary)
    names = '<th class="l">phase</th><th class="l">workload</th>'
    counts = (
        f"<tr>{names}"
        + "".join(f"<th>{esc(t)}</th>" for _, t in _COLUMNS)
        + "<th>goodput share</th><th>goodput req/s</th></tr>"
        + "".join(_throughput_row(*g) for g in groups)
    )
    latency = (
        f"<tr>{names.replace('<th', '<th rowspan=2', 2)}"
        + "".join(f"<th colspan=2>{t} ms</th>" for _, t in _LAT)
        + "</tr><tr>"
        + "<th>p50</th><th>p99</th>" * len(_LAT)
        + "</tr>"
        + "".join(_latency_row(*g) for g in groups)
    )
    return (
        f"<h3>Requests, throughput and goodput</h3><div class='wrap'><table class='results'>{counts}</table></div>"
        f"<h3>Latency</h3><div class='wrap'><table class='results latency'>{latency}</table></div>"
    )


# the percentile table's columns: (heading, the value of a LatencyStats)
_STATS: tuple[tuple[str, Callable[[LatencyStats], float | int | None]], ...] = (
    *((f"p{p:g}", lambda s, p=p: s.at(p)) for p in metrics.PERCENTILES),
    ("mean", lambda s: s.mean),
    ("min", lambda s: s.min),
    ("max", lambda s: s.max),
    ("n", lambda s: s.n),
)


def _stats_row(name: str, stats: LatencyStats) -> str:
    return (
        f'<tr><td class="l">{esc(name)}</td>'
        + "".join(f"<td>{num(value(stats), 2)}</td>" for _, value in _STATS)
        + "</tr>"
    )


def percentile_table(group: GroupSummary) -> str:
    """Every latency at every percentile; failure-aware rows when requests failed; the answer's
    latencies when the model reasoned."""
    head = '<tr><th class="l">metric (ms)</th>' + "".join(f"<th>{k}</th>" for k, _ in _STATS) + "</tr>"
    rows = [_stats_row(name, stats) for name, stats in group.latency_ms.items()]
    adjusted = group.latency_ms_failure_aware
    shown = adjusted.items() if adjusted is not None and adjusted.e2e.failed else []  # the same as above without
    for name, fa in shown:
        cells = [("∞" if fa.at(p) is None and fa.failed else num(fa.at(p), 2)) for p in metrics.PERCENTILES]
        rows.append(
            f'<tr><td class="l">{esc(name)}, failures as ∞</td>'
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
    rows += [_stats_row(name, stats) for name, stats in (answer.items() if answer is not None and reasoned else [])]
    if reasoned:
        note += (
            f'<p class="note">Reasoning: {num(group.reasoning_tokens)} of {num(group.output_tokens)} output tokens '
            f"({num(group.answer_tokens)} answer tokens). ttft, tpot and itl are over every output token; ttfot "
            "(time to first output token), tpot_answer and itl_answer over the answer alone (docs/metrics.md).</p>"
        )
    return f"<div class='wrap'><table>{head}{''.join(rows)}</table></div>{note}"


def slo_table(summary: Summary) -> str:
    """Each SLO of the whole run: its percentile, the value measured, its limit, met or missed."""
    if summary.slo is None:
        return '<p class="note">No SLOs declared: goodput counts every successful request.</p>'
    verdict = summary.all.slo
    rows = []
    for name, check in verdict.checks.items() if verdict is not None else ():
        met = {True: "met", False: "MISSED", None: "no data"}[check.met]
        rows.append(
            f'<tr><td class="l">{esc(name)}</td><td>p{check.percentile:g}</td><td>{num(check.value_ms)}</td>'
            f'<td>{num(check.limit_ms)}</td><td class="l">{met}</td></tr>'
        )
    enforced = "enforced: a miss fails the run (exit 5)" if summary.slo.enforce else "reported only (slo.enforce off)"
    return (
        '<table><tr><th class="l">SLO</th><th>at</th><th>value ms</th><th>limit ms</th><th class="l">verdict</th></tr>'
        + "".join(rows)
        + f"</table><p class='note'>Judged over the whole run's successful requests; {enforced}.</p>"
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
                f'<tr><td class="l">{esc(phase)}</td><td class="l">{esc(cls)}</td>'
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


def selfcheck_table(check: SelfCheckResult | None) -> str:
    """The self-check's evidence: each worker's samples against the limits, and how late requests were sent."""
    if check is None:
        return "<p class='note'>No self-check in this summary.</p>"
    limits = check.limits
    rows = []
    for worker, h in check.workers.items():
        if h.samples < limits.min_samples:
            judged = f"not judged (fewer than {limits.min_samples} samples)"
        elif h.cpu_p90 > limits.cpu_percent or h.loop_lag_p99_ms > limits.loop_lag_ms:
            judged = "SATURATED"
        else:
            judged = "ok"
        rows.append(
            f"<tr><td class='l'>{esc(worker)}</td><td>{h.samples:,}</td><td>{h.cpu_p90:,.1f}</td>"
            f"<td>{h.cpu_max:,.1f}</td><td>{h.loop_lag_p99_ms:,.1f}</td><td>{h.loop_lag_max_ms:,.1f}</td>"
            f"<td class='l'>{judged}</td></tr>"
        )
    workers = (
        "<table class='selfcheck'><tr><th class='l'>worker</th><th>samples</th>"
        f"<th>CPU p90 % (limit {limits.cpu_percent:g})</th><th>CPU max %</th>"
        f"<th>loop lag p99 ms (limit {limits.loop_lag_ms:g})</th><th>loop lag max ms</th><th class='l'>verdict</th></tr>"
        + "".join(rows)
        + "</table>"
        if rows
        else "<p class='note'>No worker sent a sample.</p>"
    )
    d = check.dispatch_delay
    dispatch = (
        "<p class='note'>No request was sent.</p>"
        if d is None
        else "<table class='dispatch'><tr><th class='l'>sending</th><th>p50 ms</th>"
        f"<th>p99 ms (limit {limits.dispatch_delay_ms:g})</th><th>max ms</th><th class='l'>verdict</th></tr>"
        f"<tr><td class='l'>dispatch delay</td><td>{d.p50_ms:,.1f}</td><td>{d.p99_ms:,.1f}</td><td>{d.max_ms:,.1f}</td>"
        f"<td class='l'>{'LATE' if any(r.startswith('dispatch delay') for r in check.reasons) else 'ok'}</td></tr></table>"
    )
    verdict = "valid" if check.valid else "invalid: " + "; ".join(check.reasons)
    return (
        workers
        + dispatch
        + f"<p class='note'>The self-check: {esc(verdict)}. CPU and gevent loop lag sampled every second on each "
        "worker; dispatch delay: how late each request's first attempt was sent after its scheduled time "
        "(coordinated omission). A worker with fewer samples than the minimum is not judged.</p>"
    )
