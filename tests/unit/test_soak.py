"""Soak analysis: the Theil–Sen trend, the drift rule and the windowed series of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from coordinator.results.columns import columns_of
from coordinator.results.outcome import Checks, Outcome, judge
from coordinator.results.report import write_report
from coordinator.results.soak import SOAK_FILE, SoakAnalysis, SoakSpec, analyse, judge_trend, schema_json
from coordinator.results.soak_report import read_soak
from coordinator.results.summarize import summarize
from coordinator.results.summary import PhaseWindow
from coordinator.results.trend import theil_sen
from coordinator.scenario.loader import parse
from loadgen.samples import WorkerSample
from tests.factories import VALID_SCENARIO, edited_scenario, record
from tests.paths import ROOT

HOURS = np.arange(60, dtype=np.float64) / 60.0  # an hour of one-minute windows


def test_theil_sen_finds_the_line_and_ignores_outliers() -> None:
    rng = np.random.default_rng(7)
    y = 100.0 + 30.0 * HOURS + rng.normal(0.0, 1.0, HOURS.size)
    y[[5, 17, 40]] = [900.0, -500.0, 1200.0]  # three wild windows
    fit = theil_sen(HOURS, y)
    assert fit.slope == pytest.approx(30.0, abs=3.0)
    assert fit.low < 30.0 < fit.high
    assert fit.high - fit.low < 10.0  # the outliers did not blow the interval up
    assert fit.at(0.0) == pytest.approx(100.0, abs=2.0)


def test_theil_sen_interval_matches_sens_ranks() -> None:
    # y = x exactly: every pairwise slope is 1, so the interval is [1, 1] whatever the ranks
    x = np.arange(10, dtype=np.float64)
    fit = theil_sen(x, x.copy())
    assert (fit.slope, fit.low, fit.high) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="two distinct"):
        theil_sen(np.ones(4), np.arange(4, dtype=np.float64))


def test_a_flat_noisy_series_with_outliers_is_stable() -> None:
    rng = np.random.default_rng(3)
    y = 200.0 * (1.0 + rng.normal(0.0, 0.05, HOURS.size))
    y[[3, 30, 31, 55]] *= 8.0  # GC pauses, a retry storm
    trend = judge_trend("ttft_p99", HOURS, y, SoakSpec())
    assert trend.low_pct is not None and trend.high_pct is not None
    assert trend.low_pct < 10.0 and not trend.drifting
    assert abs(trend.slope_pct or 0.0) < 5.0


def test_a_ramp_is_drifting_and_a_falling_throughput_too() -> None:
    rng = np.random.default_rng(4)
    ramp = 200.0 * (1.0 + 0.5 * HOURS) * (1.0 + rng.normal(0.0, 0.05, HOURS.size))  # +50% in the hour
    trend = judge_trend("tpot_p50", HOURS, ramp, SoakSpec())
    assert trend.drifting and trend.low_pct is not None and trend.low_pct > 10.0
    assert trend.slope_pct == pytest.approx(50.0, abs=10.0)
    falling = 1000.0 * (1.0 - 0.3 * HOURS)
    assert judge_trend("requests_per_s", HOURS, falling, SoakSpec()).drifting
    assert not judge_trend("ttft_p50", HOURS, falling, SoakSpec()).drifting  # latency falling: no harm


def test_a_limit_decides_and_null_means_not_judged() -> None:
    ramp = 100.0 * (1.0 + 0.2 * HOURS)  # +20%/h, exactly
    assert judge_trend("ttft_p99", HOURS, ramp, SoakSpec()).drifting
    lenient = SoakSpec.model_validate({"max_slope_pct_per_hour": {"ttft_p99": 25}})
    assert not judge_trend("ttft_p99", HOURS, ramp, lenient).drifting
    off = SoakSpec.model_validate({"max_slope_pct_per_hour": {"ttft_p99": None}})
    assert not judge_trend("ttft_p99", HOURS, ramp, off).drifting
    errors = 0.02 * HOURS  # from 0 to 2% in the hour: two points per hour
    assert judge_trend("error_rate", HOURS, errors, SoakSpec()).drifting
    assert not judge_trend("error_rate", HOURS, errors, SoakSpec(max_error_rate_rise_per_hour=0.05)).drifting


def _run(leak_per_window: float, windows: int = 8, per_window: int = 20) -> SoakAnalysis:
    """Records of a phase of ``windows`` 10-s windows whose TTFT grows by ``leak_per_window`` each."""
    spec = SoakSpec(window_s=10.0)
    rng = np.random.default_rng(5)
    records = []
    for w in range(windows):
        for i in range(per_window):
            t0 = w * 10.0 + i * (10.0 / per_window)
            ttft = 0.05 * (1.0 + leak_per_window * w) * float(1.0 + rng.normal(0.0, 0.02))
            error = "http_5xx" if i == 0 and w == 3 else None
            records.append(record(t0=t0, ttft=ttft, tokens=5, error=error))
    samples = [WorkerSample(worker="w:1", time=t, rss_bytes=100_000_000) for t in np.arange(0.0, 80.0, 1.0)]
    cols = columns_of(records)
    return analyse(cols, PhaseWindow(name="steady", start=0.0, end=windows * 10.0), spec, samples)


def test_analyse_a_run_windows_and_verdicts() -> None:
    flat = _run(0.0)
    assert flat.verdict.verdict == "stable", flat.verdict.reasons
    assert flat.verdict.windows == 8 and len(flat.windows) == 8
    first = flat.windows[0]
    assert first.requests == 20 and first.requests_per_s == pytest.approx(2.0)
    assert first.ttft_p50 == pytest.approx(50.0, rel=0.05)
    assert first.worker_memory == pytest.approx(100_000_000) and first.target_memory is None
    assert flat.windows[3].error_rate == pytest.approx(1 / 20)
    assert "target_memory" not in flat.verdict.trends and "worker_memory" in flat.verdict.trends
    leaking = _run(0.05)  # TTFT +5% a window
    assert leaking.verdict.verdict == "drifting"
    assert any(reason.startswith("TTFT p50 rises") for reason in leaking.verdict.reasons)
    assert SoakAnalysis.model_validate_json(leaking.model_dump_json()) == leaking


def test_the_report_shows_the_soak_series_trends_and_verdict(tmp_path: Path) -> None:
    leaking = _run(0.05)
    (tmp_path / SOAK_FILE).write_text(leaking.model_dump_json())
    assert read_soak(tmp_path) == leaking
    assert read_soak(tmp_path / "nowhere") is None
    summary = summarize(columns_of([record(t0=1.0)]), [PhaseWindow(name="steady", start=0.0, end=80.0)], None)
    html = write_report(tmp_path / "report.html", summary, [record(t0=1.0)], []).read_text()
    section = html[html.index("<section id='soak'>") :]
    section = section[: section.index("</section>")]
    assert "Soak: drifting" in section and "TTFT p50 rises" in section
    assert section.count("<svg") == 1 and "TTFT p99" in section and "worker memory" in section
    assert "<b>drifting</b>" in section


def test_too_few_windows_is_inconclusive() -> None:
    short = _run(0.5, windows=3)
    assert short.verdict.verdict == "inconclusive" and not short.verdict.trends
    assert "soak.min_windows" in short.verdict.reasons[0]


def test_exported_soak_schema_is_current() -> None:
    committed = (ROOT / "docs" / "soak.schema.json").read_text()
    assert committed == schema_json(), "run: finishline schema --soak --output docs/soak.schema.json"


def test_when_a_scenario_gets_a_soak_analysis(tmp_path: Path) -> None:
    def scenario(text: str) -> Any:
        sc, problems, _ = parse(text, "s.yaml", tmp_path)
        assert sc is not None, problems
        return sc

    assert scenario(VALID_SCENARIO).soak_analysis is None  # a plain steady phase: none
    two_soaks = edited_scenario(
        "phases",
        [
            {"name": "warm", "kind": "warmup", "users": 1, "duration": "5s"},
            {"name": "short", "kind": "soak", "users": 2, "duration": "1m"},
            {"name": "long", "kind": "soak", "users": 2, "duration": "2h"},
        ],
    )
    assert scenario(two_soaks).soak_analysis == SoakSpec(phase="long")  # a soak phase: the defaults
    named = yaml_with(two_soaks, {"soak": {"phase": "short", "window_s": 30}})
    assert scenario(named).soak_analysis == SoakSpec(phase="short", window_s=30)
    _, problems, _ = parse(yaml_with(VALID_SCENARIO, {"soak": {"phase": "nope"}}), "s.yaml", tmp_path)
    assert any("soak.phase 'nope' is not a steady or soak phase" in str(p) for p in problems), problems
    _, problems, _ = parse(yaml_with(VALID_SCENARIO, {"soak": {"window_s": 0}}), "s.yaml", tmp_path)
    assert [p.field for p in problems] == ["soak.window_s"], problems


def yaml_with(text: str, fields: dict[str, object]) -> str:
    return yaml.safe_dump({**yaml.safe_load(text), **fields}, sort_keys=False)


def test_a_drifting_soak_exits_7_below_the_more_serious_outcomes() -> None:
    summary = summarize(columns_of([record(t0=1.0)]), [PhaseWindow(name="steady", start=0.0, end=80.0)], None)
    drifting = judge(summary, Checks(), drift=("TPOT p50 rises",))
    assert (drifting.outcome, drifting.exit_code, drifting.reasons) == (Outcome.DRIFTING, 7, ("TPOT p50 rises",))
    assert judge(summary, Checks()).exit_code == 0
    partial = judge(summary, Checks(), failures=("a worker was lost",), drift=("TPOT p50 rises",))
    assert partial.exit_code == 3 and partial.reasons == ("a worker was lost", "TPOT p50 rises")


def test_a_very_long_series_is_thinned_not_refused() -> None:
    x = np.arange(10_000, dtype=np.float64) / 60.0  # a week of minute windows, in hours
    fit = theil_sen(x, 5.0 + 0.1 * x)
    assert fit.slope == pytest.approx(0.1) and fit.n == 2000
