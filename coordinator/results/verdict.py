"""The report's first section: the run's verdict, then the figures a reader came for, then each check.

The banner is the run's outcome (:mod:`coordinator.results.outcome`) in the words and with the
exit code of the console's last line, so the two always agree. Under it: the headline figures
of the whole run (warm-ups left out), and a table of what was checked, each with its verdict and
the figures behind it: every SLO (measured against its limit), the self-check (valid or invalid,
with each reason), whether the run completed, records lost, a soak's trend, and the comparison
with a baseline when the run had one (its row comes from ``coordinator.compare``, which judges it
after the report is written: :func:`restate_verdict` then rewrites this section).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from coordinator.results.files import write_atomic
from coordinator.results.outcome import Outcome, RunOutcome
from coordinator.results.page import esc, num
from coordinator.results.summary import Summary

VERDICT_ID = "verdict"


class Tone(StrEnum):
    """How a check's row is coloured: fine, worth a look, or wrong."""

    OK = "ok"
    WARN = "warn"
    BAD = "bad"
    NONE = ""  # nothing to judge (no SLOs declared)


@dataclass(frozen=True, slots=True)
class Check:
    """One row of the verdict's table: what was checked, its verdict, and the figures behind it."""

    name: str
    verdict: str
    tone: Tone
    detail: str = ""
    items: tuple[str, ...] = ()  # listed under the detail: each reason, each metric that got worse


def verdict_banner(outcome: RunOutcome, headline: str | None = None) -> str:
    """An outcome's banner: its headline (or ``headline``), its exit code, and every reason when
    there are several (a run's report, a matrix's)."""
    tone = Tone.OK if outcome.outcome is Outcome.OK else Tone.BAD
    reasons = "".join(f"<li>{esc(r)}</li>" for r in outcome.reasons)
    return (
        f'<div class="banner verdict {tone}"><b>{esc(headline or outcome.headline)}</b> '
        f'<span class="note">(exit code {outcome.exit_code})</span>'
        + (f"<ul>{reasons}</ul>" if len(outcome.reasons) > 1 else "")
        + "</div>"
    )


def headline_figures(summary: Summary) -> str:
    """The whole run's figures in a row: requests, error rate, TTFT p50 and p99, TPOT p50, output
    tokens/s, and the goodput share when SLOs were declared."""
    overall = summary.all
    if not overall.count:
        return "<p class='note'>No request was measured.</p>"
    ttft, tpot = overall.latency_ms.ttft, overall.latency_ms.tpot
    tiles = [
        ("requests", num(overall.count)),
        ("errors", f"{100 * overall.errors / overall.count:.1f}%"),
        ("TTFT p50", f"{num(ttft.p50)} ms"),
        ("TTFT p99", f"{num(ttft.p99)} ms"),
        ("TPOT p50", f"{num(tpot.p50)} ms"),
        ("output tok/s", num(overall.output_tokens_per_s)),
    ]
    if summary.slo is not None:
        share = overall.goodput.share
        tiles.append(("goodput", "–" if share is None else f"{100 * share:.1f}%"))
    body = "".join(f"<div><dt>{esc(k)}</dt><dd>{v}</dd></div>" for k, v in tiles)
    return f"<dl class='figures'>{body}</dl>"


def run_line(summary: Summary) -> str:
    """What ran: the target, the records kept, and how many of them the totals leave out (warm-ups)."""
    run = summary.run
    line = f"Target: <b>{esc(run.target)}</b> · records: <b>{num(run.records)}</b>"
    warm = sum(summary.phases[p].count for p in summary.phases_order if p in summary.unmeasured_phases)
    if warm:
        line += f" ({warm:,} in warm-up phases, left out of the whole-run totals)"
    return f"<p class='run'>{line}</p>"


def slo_checks(summary: Summary) -> list[Check]:
    """One row per SLO: the measured value at its percentile against its limit."""
    if summary.slo is None:
        return [Check("SLOs", "none declared", Tone.NONE, "goodput counts every successful request")]
    verdict = summary.all.slo
    enforced = summary.slo.enforce
    rows = []
    for metric, check in verdict.checks.items() if verdict is not None else ():
        value = "no data" if check.value_ms is None else f"{num(check.value_ms)} ms"
        if check.met is None:
            word, tone = "no data", Tone.WARN
        elif check.met:
            word, tone = "met", Tone.OK
        else:
            word, tone = "MISSED", Tone.BAD if enforced else Tone.WARN
        sign = "≤" if check.met else ">" if check.met is False else "vs"
        how = "enforced: a miss fails the run" if enforced else "reported only (slo.enforce is off)"
        rows.append(
            Check(
                f"SLO {metric.upper()} p{check.percentile:g}",
                word,
                tone,
                f"{value} {sign} limit {num(check.limit_ms)} ms; {how}",
            )
        )
    return rows


def selfcheck_check(summary: Summary) -> Check:
    """Valid or invalid, with every reason; the figures judged when valid."""
    if not summary.valid:
        return Check(
            "Self-check",
            "Invalid",
            Tone.BAD,
            "the client, not the server, may have limited these numbers:",
            summary.invalid_reasons,
        )
    check = summary.selfcheck
    if check is None:
        return Check("Self-check", "Valid", Tone.OK, "the load generator was not saturated")
    limits = check.limits
    figures = []
    if check.workers:
        cpu = max(w.cpu_p90 for w in check.workers.values())
        lag = max(w.loop_lag_p99_ms for w in check.workers.values())
        figures += [
            f"CPU p90 {cpu:.0f}% (limit {limits.cpu_percent:g}%)",
            f"loop lag p99 {lag:.0f} ms (limit {limits.loop_lag_ms:g} ms)",
        ]
    if check.dispatch_delay is not None:
        figures.append(
            f"dispatch delay p99 {check.dispatch_delay.p99_ms:.0f} ms (limit {limits.dispatch_delay_ms:g} ms)"
        )
    detail = "the load generator was not saturated" + (f": {', '.join(figures)}" if figures else "")
    return Check("Self-check", "Valid", Tone.OK, detail)


def completeness_checks(summary: Summary) -> list[Check]:
    """Complete or partial, records lost, warm-up only."""
    rows = []
    if summary.partial:
        counted = "; the ones lost are counted in the next row" if summary.losses else ""
        rows.append(
            Check(
                "Completeness",
                "Partial result",
                Tone.WARN,
                f"{summary.partial_reason or 'the run did not finish'}. Every record that reached the collector "
                f"is included{counted}.",
            )
        )
    else:
        rows.append(Check("Completeness", "Complete", Tone.OK, "every phase ran to its end"))
    losses = summary.losses
    if losses is not None:
        per_worker = ", ".join(f"{w}: {n:,}" for w, n in losses.by_worker.items()) or "none"
        rows.append(
            Check(
                "Records lost",
                f"{losses.records_lost:,}",
                Tone.WARN,
                f"requests begun whose record never arrived, counted per worker: {per_worker}",
                tuple(losses.reasons()),
            )
        )
    if summary.run.records and not summary.all.count and summary.unmeasured_phases:
        rows.append(
            Check(
                "Measured",
                "only warm-up traffic",
                Tone.WARN,
                f"all {summary.run.records:,} requests ran in warm-up phases, which the totals leave out; "
                "their numbers are in the warm-up rows of the results",
            )
        )
    return rows


def soak_check(summary: Summary) -> list[Check]:
    soak = summary.soak
    if soak is None:
        return []
    tone = {"stable": Tone.OK, "drifting": Tone.BAD, "inconclusive": Tone.WARN}[soak.verdict]
    detail = f"phase {soak.phase}, {soak.windows} windows of {soak.window_s:g} s (the soak section below)"
    return [Check("Soak", soak.verdict, tone, detail, soak.reasons)]


def checks_table(checks: Sequence[Check]) -> str:
    rows = []
    for c in checks:
        items = "".join(f"<li>{esc(i)}</li>" for i in c.items)
        rows.append(
            f"<tr class='{c.tone}'><td class='l'>{esc(c.name)}</td><td class='v'>{esc(c.verdict)}</td>"
            f"<td class='t'>{esc(c.detail)}{f'<ul>{items}</ul>' if items else ''}</td></tr>"
        )
    head = "<tr><th class='l'>check</th><th class='l'>verdict</th><th class='l'>measured</th></tr>"
    return f"<table class='checks'>{head}{''.join(rows)}</table>"


def verdict_section(summary: Summary, extra: Sequence[Check] = ()) -> str:
    """The section itself; ``extra``: rows judged elsewhere (the comparison with a baseline)."""
    outcome = summary.outcome
    banner = "" if outcome is None else verdict_banner(outcome)  # a summary written before outcomes existed
    checks = [*slo_checks(summary), selfcheck_check(summary), *completeness_checks(summary), *soak_check(summary)]
    return (
        f"<section id='{VERDICT_ID}'><h2>Verdict</h2>\n{banner}\n{headline_figures(summary)}\n{run_line(summary)}\n"
        f"{checks_table([*checks, *extra])}</section>"
    )


def failure_verdict(reason: str, outcome: RunOutcome | None = None) -> str:
    """The verdict of a run that ended before any request was measured: its outcome, else its reason."""
    banner = verdict_banner(outcome) if outcome is not None else f"<div class='banner bad'><b>{esc(reason)}</b></div>"
    return f"<section id='{VERDICT_ID}'><h2>Verdict</h2>\n{banner}</section>"


_SECTION = re.compile(rf"<section id='{VERDICT_ID}'>.*?</section>", re.DOTALL)


def restate_verdict(path: Path, summary: Summary, extra: Sequence[Check] = ()) -> None:
    """Rewrite a written report's verdict from ``summary`` and ``extra`` (its outcome was decided
    after the report was drawn: by a comparison with a baseline), so the report and the exit
    code agree."""
    page = path.read_text()
    write_atomic(path, _SECTION.sub(lambda _: verdict_section(summary, extra), page, count=1))
