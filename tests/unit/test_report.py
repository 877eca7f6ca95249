"""report.html: one self-contained file with the verdict first, then the figures, then the tables."""

from __future__ import annotations

import html as htmllib
import re
from pathlib import Path

import numpy as np

from coordinator.compare.comparison import compare
from coordinator.compare.gate import verdict_check
from coordinator.compare.thresholds import Thresholds
from coordinator.results.outcome import Checks, Outcome, judge, with_problem
from coordinator.results.report import write_failure_report, write_report
from coordinator.results.selfcheck import SelfCheckLimits, evaluate
from coordinator.results.slo import Slo
from coordinator.results.summarize import summarize
from coordinator.results.summary import PhaseWindow, RunInfo, Summary
from coordinator.results.verdict import restate_verdict
from loadgen.records import RequestRecord
from tests.factories import REPORT_SECTIONS, record, worker_samples
from tests.unit.test_compare import one_step, samples


def _records(failed: bool = False) -> list[RequestRecord]:
    records = [record(phase="warm", t0=5 + i * 0.1) for i in range(20)]
    records += [
        record(phase="steady", t0=20 + i * 0.05, ttft=0.02 + (i % 7) / 100, workload="ab"[i % 2], error=None)
        if not failed
        else record(phase="steady", t0=20 + i * 0.05, error="connect")
        for i in range(200)
    ]
    records += [record(phase="steady", t0=25, error="http_429"), record(phase="steady", error="timeout")]
    return records


def _run(tmp_path: Path, partial: bool = False, cpu: float = 10.0, failed: bool = False, enforce: bool = False) -> str:
    records = _records(failed)
    samples = worker_samples(30, cpu=cpu, start=5.0)
    check = evaluate(samples, records, SelfCheckLimits())
    windows = [PhaseWindow(name="warm", start=4.0, end=8.0), PhaseWindow(name="steady", start=19.0, end=31.0)]
    summary = summarize(
        records,
        windows,
        Slo(ttft_ms=60, tpot_ms=30, enforce=enforce),
        partial=partial,
        partial_reason="interrupted (SIGINT)" if partial else None,
        selfcheck=check,
        run=RunInfo(id="run-1", scenario="demo", target="sim", phases=tuple(windows), records=len(records)),
        unmeasured=frozenset({"warm"}),
    )
    outcome = judge(summary, Checks(), enforce_slo=enforce, interrupted="interrupted (SIGINT)" if partial else None)
    summary = summary.model_copy(update={"outcome": outcome})
    (tmp_path / "summary.json").write_text(summary.model_dump_json())
    path = write_report(
        tmp_path / "report.html",
        summary,
        records,
        samples,
        scenario_yaml="name: demo\ntarget: {kind: simulator}\n",
        environment='{"python": "3.11"}',
    )
    return path.read_text()


def _summary(tmp_path: Path) -> Summary:
    return Summary.model_validate_json((tmp_path / "summary.json").read_text())


def _text(fragment: str) -> str:
    """What a reader sees of ``fragment``: its text, spaces collapsed."""
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def _verdict(page: str) -> str:
    found = re.findall(r"<section id='verdict'>.*?</section>", page, re.DOTALL)
    assert len(found) == 1, found
    return found[0]


def _banner(page: str) -> str:
    found = re.search(r'<div class="banner verdict (ok|bad)"><b>(.*?)</b> <span class="note">\(exit code (\d+)\)', page)
    assert found is not None
    return f"{htmllib.unescape(found.group(2))} (exit {found.group(3)})"


def _row(page: str, check: str) -> str:
    """The text of the verdict's row for ``check``."""
    rows = [_text(r) for r in re.findall(r"<tr class='[a-z]*'>.*?</tr>", _verdict(page), re.DOTALL)]
    found = [r for r in rows if r.startswith(check)]
    assert len(found) == 1, (check, rows)
    return found[0]


def test_report_is_self_contained_with_every_section_in_order(tmp_path: Path) -> None:
    html = _run(tmp_path)
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing fetched from anywhere
    assert "<script" not in html
    assert re.findall(r"<section id='([a-z-]+)'", html) == REPORT_SECTIONS
    assert html.index("<h2 class='part'>Figures") < html.index("id='latency'")
    assert html.index("id='client-health'") < html.index("<h2 class='part'>Tables") < html.index("id='results'")
    assert html.count("<svg") == 5  # CDFs, over time, per phase, errors, client health
    for text in (
        "Results per phase",
        "TTFT",
        "ITL",
        "Latency distributions",
        "Over time",
        "http_429",
        "timeout",
        "name: demo",
        "&quot;python&quot;",
        "Complete",
        "Valid",
        "steady",
        "warm (warm-up)",
        "ttft, failures as ∞",  # 2 of 202 failed: p99.9 reaches them
    ):
        assert text in html, text


def test_the_verdict_states_the_outcome_the_figures_and_every_check(tmp_path: Path) -> None:
    html = _run(tmp_path)
    summary = _summary(tmp_path)
    assert summary.outcome is not None
    # the console's last line is "finishline: {headline} (exit {code})"
    assert (
        _banner(html)
        == f"{summary.outcome.headline} (exit {summary.outcome.exit_code})"
        == "OK: the run completed (exit 0)"
    )
    verdict = _text(_verdict(html))
    overall = summary.all
    for tile in (
        "requests 202",
        "errors 1.0%",
        f"TTFT p50 {overall.latency_ms.ttft.p50:,.1f} ms",
        f"TTFT p99 {overall.latency_ms.ttft.p99:,.1f} ms",
        f"TPOT p50 {overall.latency_ms.tpot.p50:,.1f} ms",
        f"output tok/s {overall.output_tokens_per_s:,.1f}",
        f"goodput {100 * (overall.goodput.share or 0):.1f}%",
        "records: 222 (20 in warm-up phases",
    ):
        assert tile in verdict, (tile, verdict)
    assert overall.slo is not None
    ttft = overall.slo.checks["ttft"]
    assert ttft.met is False and ttft.value_ms is not None
    assert _row(html, "SLO TTFT p99") == (
        f"SLO TTFT p99 MISSED {ttft.value_ms:,.1f} ms > limit 60.0 ms; reported only (slo.enforce is off)"
    )
    assert _row(html, "SLO TPOT p99").startswith("SLO TPOT p99 met ")
    assert _row(html, "Self-check").startswith("Self-check Valid the load generator was not saturated: CPU p90 10%")
    assert _row(html, "Completeness") == "Completeness Complete every phase ran to its end"


def test_an_invalid_a_partial_and_a_failed_run_each_lead_with_their_exit_code(tmp_path: Path) -> None:
    html = _run(tmp_path, cpu=99.0)
    assert _banner(html).startswith("INVALID: worker w:1 CPU p90 99% > 90%") and _banner(html).endswith("(exit 4)")
    assert "Self-check Invalid the client, not the server, may have limited these numbers: worker w:1 CPU p90 99%" in (
        _row(html, "Self-check")
    )
    partial = tmp_path / "partial"
    partial.mkdir()
    html = _run(partial, partial=True)
    assert _banner(html) == "INTERRUPTED: interrupted (SIGINT) (exit 130)"
    assert _row(html, "Completeness").startswith("Completeness Partial result interrupted (SIGINT).")
    failed = tmp_path / "failed"
    failed.mkdir()
    html = _run(failed, failed=True)
    assert _banner(html).startswith("REQUESTS FAILED: every one of 202 requests failed") and "(exit 6)" in _banner(html)
    assert "errors 100.0%" in _text(_verdict(html)) and "TTFT p50 – ms" in _text(_verdict(html))
    enforced = tmp_path / "enforced"
    enforced.mkdir()
    html = _run(enforced, enforce=True)
    assert _banner(html).startswith("SLO MISSED: TTFT p99") and _banner(html).endswith("(exit 5)")
    assert "<tr class='bad'><td class='l'>SLO TTFT p99</td>" in html  # enforced: a miss is wrong, not a warning


def test_a_regression_restates_the_verdict_with_the_worst_figures(tmp_path: Path) -> None:
    html = _run(tmp_path)
    summary = _summary(tmp_path)
    assert summary.outcome is not None and summary.outcome.outcome is Outcome.OK
    rng = np.random.default_rng(5)
    base = one_step("base", samples(rng))
    slower = compare(one_step("cur", samples(rng, tpot_ms=12.0)), base, Thresholds())
    assert slower.regression
    outcome = with_problem(summary.outcome, Outcome.REGRESSION, slower.finding)
    restated = summary.model_copy(update={"outcome": outcome})
    restate_verdict(tmp_path / "report.html", restated, (verdict_check("base", slower, outcome),))
    page = (tmp_path / "report.html").read_text()
    assert _banner(page) == f"{outcome.headline} (exit 1)" and outcome.headline.startswith("REGRESSION: ")
    row = _row(page, "Baseline base")
    assert row.startswith("Baseline base REGRESSION 9 figure(s) worse than baseline base: tpot p50"), row
    assert "The worst: steady, all: tpot p50 9.99 → 12.0 ms, +2.02 (+20.2%): worse" in row, row
    before, after = html.split(_verdict(html)), page.split(_verdict(page))
    assert before == after  # only the verdict changed

    same = compare(one_step("cur", samples(rng)), base, Thresholds())
    assert not same.regression
    restate_verdict(tmp_path / "report.html", summary, (verdict_check("base", same, summary.outcome),))
    page = (tmp_path / "report.html").read_text()
    assert _banner(page) == "OK: the run completed (exit 0)"
    assert _row(page, "Baseline base").startswith("Baseline base no regression against baseline base")


def test_the_self_check_is_a_table_of_each_worker_and_the_dispatch_delay(tmp_path: Path) -> None:
    html = _run(tmp_path, cpu=99.0)
    section = re.search(r"<section id='selfcheck'>.*?</section>", html, re.DOTALL)
    assert section is not None
    rows = [_text(r) for r in re.findall(r"<tr>.*?</tr>", section.group(0), re.DOTALL)]
    assert rows[0] == "worker samples CPU p90 % (limit 90) CPU max % loop lag p99 ms (limit 50) loop lag max ms verdict"
    assert rows[1].startswith("w:1 30 99.0 99.0 ") and rows[1].endswith(" SATURATED")
    assert rows[3].startswith("dispatch delay 0.0 0.0 0.0 ok")
    assert "{" not in _text(section.group(0))  # not JSON


def test_a_run_that_failed_before_any_request_says_its_outcome(tmp_path: Path) -> None:
    from coordinator.results.outcome import decide

    outcome = decide({Outcome.PARTIAL: ["the target did not start: exit 1"]})
    page = write_failure_report(tmp_path / "report.html", outcome.headline, outcome).read_text()
    assert _banner(page) == "PARTIAL: the target did not start: exit 1 (exit 3)"
    assert re.findall(r"<section id='([a-z-]+)'", page) == ["verdict"]
    plain = write_failure_report(tmp_path / "report.html", "it failed").read_text()
    assert "<b>it failed</b>" in _verdict(plain)


def test_report_says_partial_and_invalid(tmp_path: Path) -> None:
    html = _run(tmp_path, partial=True, cpu=99.0)
    assert "Partial result" in html and "interrupted (SIGINT)" in html
    assert "Invalid" in html and "CPU p90" in html
