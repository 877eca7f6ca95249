"""report.html: one self-contained file with the figures, the verdicts and what ran."""

from __future__ import annotations

import re
from pathlib import Path

from coordinator.results.report import write_report
from coordinator.results.selfcheck import SelfCheckLimits, evaluate
from coordinator.results.slo import Slo
from coordinator.results.summarize import summarize
from coordinator.results.summary import PhaseWindow, RunInfo
from tests.factories import record, worker_samples


def _run(tmp_path: Path, partial: bool = False, cpu: float = 10.0) -> str:
    records = [record(phase="warm", t0=5 + i * 0.1) for i in range(20)]
    records += [
        record(phase="steady", t0=20 + i * 0.05, ttft=0.02 + (i % 7) / 100, workload="ab"[i % 2]) for i in range(200)
    ]
    records += [record(phase="steady", t0=25, error="http_429"), record(phase="steady", error="timeout")]
    samples = worker_samples(30, cpu=cpu, start=5.0)
    check = evaluate(samples, records, SelfCheckLimits())
    windows = [PhaseWindow(name="warm", start=4.0, end=8.0), PhaseWindow(name="steady", start=19.0, end=31.0)]
    summary = summarize(
        records,
        windows,
        Slo(ttft_ms=60, tpot_ms=30),
        partial=partial,
        partial_reason="interrupted (SIGINT)" if partial else None,
        selfcheck=check,
        run=RunInfo(id="run-1", scenario="demo", target="sim", phases=tuple(windows), records=len(records)),
        unmeasured=frozenset({"warm"}),
    )
    path = write_report(
        tmp_path / "report.html",
        summary,
        records,
        samples,
        scenario_yaml="name: demo\ntarget: {kind: simulator}\n",
        environment='{"python": "3.11"}',
    )
    return path.read_text()


def test_report_is_self_contained_with_every_section(tmp_path: Path) -> None:
    html = _run(tmp_path)
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing fetched from anywhere
    assert "<script" not in html
    assert html.count("<svg") >= 5  # CDFs, over time, per phase, errors, client health
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


def test_report_says_partial_and_invalid(tmp_path: Path) -> None:
    html = _run(tmp_path, partial=True, cpu=99.0)
    assert "Partial result" in html and "interrupted (SIGINT)" in html
    assert "Invalid" in html and "CPU p90" in html
