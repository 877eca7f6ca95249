"""Exact summaries from synthetic records: percentiles, errors, retries, goodput, warm-up, CSV, self-check."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest

from coordinator.results.selfcheck import SelfCheckLimits, evaluate
from coordinator.results.slo import Slo
from coordinator.results.status import RunStatus
from coordinator.results.summarize import percentile_stats, summarize
from coordinator.results.summary import PhaseWindow
from coordinator.results.table import header, write_csv
from loadgen.samples import WorkerSample
from tests.factories import record, worker_samples


def test_percentiles_are_exact_numpy_over_all_records() -> None:
    rng = random.Random(7)
    ttfts = [rng.uniform(0.01, 0.5) for _ in range(1000)]
    records = [record(t0=100 + i * 0.01, ttft=t, workload="ab"[i % 2]) for i, t in enumerate(ttfts)]
    summary = summarize(records)
    stats = summary.all.latency_ms.ttft
    expected = np.percentile(np.array(ttfts) * 1000, [50, 90, 95, 99, 99.9])
    got = [stats.p50, stats.p90, stats.p95, stats.p99, stats.p99_9]
    assert np.allclose(got, expected, atol=1e-6)
    assert stats.mean == pytest.approx(np.mean(ttfts) * 1000)
    assert stats.n == 1000
    # per workload: exactly the records of that workload
    a = [t for i, t in enumerate(ttfts) if i % 2 == 0]
    assert summary.all.workloads["a"].latency_ms.ttft.p99 == pytest.approx(np.percentile(a, 99) * 1000)


def test_tpot_itl_and_e2e_follow_the_metric_definitions() -> None:
    rec = record(ttft=0.1, itl=0.02, tokens=11)
    lat = summarize([rec]).all.latency_ms
    assert lat.tpot.p50 == pytest.approx((0.1 + 10 * 0.02 + 0.001 - 0.1) / 10 * 1000)
    assert lat.itl.n == 10 and lat.itl.p50 == pytest.approx(20.0, abs=1e-3)
    assert lat.e2e.p50 == pytest.approx((0.1 + 0.2 + 0.001) * 1000)


def test_errors_by_class_and_retries_and_latency_over_successes_only() -> None:
    records = [record(ttft=0.05) for _ in range(8)]
    records += [record(error="http_5xx"), record(error="timeout"), record(error="timeout")]
    records += [record(ttft=0.05, retries=2)]
    g = summarize(records).all
    assert g.count == 12 and g.ok == 9 and g.errors == 3
    assert g.errors_by_class == {"http_5xx": 1, "timeout": 2}
    assert g.retries == 2 and g.attempts == 14 and g.requests_with_retries == 1
    assert g.latency_ms.ttft.n == 9  # failed requests have no latency


def test_failure_aware_percentiles_count_a_failure_as_infinitely_slow() -> None:
    rng = random.Random(3)
    ttfts = [rng.uniform(0.01, 0.5) for _ in range(950)]
    ok = [record(t0=100 + i * 0.01, ttft=t) for i, t in enumerate(ttfts)]
    failed = [record(t0=200 + i * 0.01, error=rng.choice(["timeout", "http_5xx"])) for i in range(50)]  # 5%
    cancelled = [record(t0=300, error="cancelled")]  # the run stopped: not the server's failure
    g = summarize([*ok, *failed, *cancelled]).all
    adjusted, plain = g.latency_ms_failure_aware, g.latency_ms
    assert adjusted is not None and adjusted.ttft.n == 1000 and adjusted.ttft.failed == 50
    # numpy over the successes and 50 values of +inf, independently
    expected = np.percentile(np.array(ttfts + [np.inf] * 50) * 1000, [50, 90])
    assert adjusted.ttft.p50 == pytest.approx(expected[0]) and adjusted.ttft.p90 == pytest.approx(expected[1])
    assert adjusted.ttft.p90 > plain.ttft.p90  # type: ignore[operator]
    assert adjusted.ttft.p99 is None and plain.ttft.p99 is not None  # p99 falls among the failures

    none_failed = summarize(ok).all
    assert none_failed.latency_ms_failure_aware is not None
    for metric, stats in none_failed.latency_ms_failure_aware.items():
        assert stats.failed == 0
        for q in (50, 90, 95, 99, 99.9):
            assert stats.at(q) == none_failed.latency_ms.get(metric).at(q)


def test_goodput_counts_requests_meeting_every_slo() -> None:
    records = [record(ttft=t) for t in (0.05, 0.08, 0.2, 0.3)] + [record(error="timeout")]
    slo = Slo(ttft_ms=100, percentile=50)
    g = summarize(records, slo=slo).all
    assert g.goodput.requests == 2
    assert g.goodput.share == pytest.approx(2 / 5)
    assert g.slo is not None and g.slo.checks["ttft"].met is False  # p50 of (50, 80, 200, 300) = 140 ms
    g2 = summarize(records, slo=Slo(ttft_ms=500)).all
    assert g2.slo is not None and g2.slo.met is True and g2.goodput.requests == 4


def test_rates_use_the_phase_window_and_warmup_is_left_out_of_totals() -> None:
    warm = [record(phase="warm", t0=10 + i) for i in range(5)]
    steady = [record(phase="steady", t0=20 + i * 0.5, tokens=10) for i in range(20)]
    windows = [PhaseWindow(name="warm", start=9.0, end=15.0), PhaseWindow(name="steady", start=19.0, end=29.0)]
    s = summarize(warm + steady, windows, unmeasured=frozenset({"warm"}))
    assert s.phases_order == ("warm", "steady")
    assert s.phases["warm"].count == 5
    assert s.all.count == 20  # the warm-up is not in the run's totals
    assert s.phases["steady"].requests_per_s == pytest.approx(20 / 10.0)
    assert s.phases["steady"].output_tokens_per_s == pytest.approx(200 / 10.0)
    assert s.all.duration_s == pytest.approx(10.0)
    assert s.unmeasured_phases == ("warm",)


def test_partial_and_empty_summaries() -> None:
    s = summarize([], partial=True, partial_reason="interrupted (SIGINT)")
    assert s.status == RunStatus.PARTIAL and s.partial and s.all.count == 0
    assert s.all.latency_ms.ttft.p50 is None and s.all.duration_s is None and s.all.requests_per_s is None
    assert percentile_stats(np.array([np.nan])).n == 0


def test_summary_csv_has_a_row_per_phase_and_workload(tmp_path: Path) -> None:
    records = [record(phase=p, workload=w) for p in ("a", "b") for w in ("x", "y")]
    s = summarize(records)
    path = write_csv(s, tmp_path / "summary.csv")
    rows = list(csv.reader(path.open()))
    assert rows[0] == header()
    keys = [(r[0], r[1]) for r in rows[1:]]
    assert keys == [
        ("a", "all"),
        ("a", "x"),
        ("a", "y"),
        ("b", "all"),
        ("b", "x"),
        ("b", "y"),
        ("all", "all"),
        ("all", "x"),
        ("all", "y"),
    ]
    col = rows[0].index("ttft_p50_ms")
    assert float(rows[-3][col]) == pytest.approx(s.all.latency_ms.ttft.p50)


def test_selfcheck_marks_a_saturated_client_invalid_with_the_reason() -> None:
    records = [record(delay=0.001) for _ in range(50)]
    ok = evaluate(worker_samples(cpu=30, lag_ms=2), records, SelfCheckLimits())
    assert ok.valid and not ok.reasons
    assert ok.workers["w:1"].samples == 10 and ok.workers["w:1"].cpu_p90 == pytest.approx(30.0)
    busy = evaluate(worker_samples(cpu=99, lag_ms=2), records, SelfCheckLimits())
    assert not busy.valid and "CPU" in busy.reasons[0]
    lagging = evaluate(worker_samples(cpu=30, lag_ms=200), records, SelfCheckLimits())
    assert not lagging.valid and "loop lag" in lagging.reasons[0]
    late = evaluate(worker_samples(cpu=30, lag_ms=2), [record(delay=0.3) for _ in range(50)], SelfCheckLimits())
    assert not late.valid and "dispatch delay" in late.reasons[0]
    assert late.dispatch_delay is not None and late.dispatch_delay.p99_ms == pytest.approx(300.0)
    s = summarize(records, selfcheck=busy)
    assert s.valid is False and s.invalid_reasons == busy.reasons


def test_progress_window_follows_the_current_phase() -> None:
    from coordinator.run.progress import ProgressModel

    model = ProgressModel(window_s=10.0)
    model.set_phase("a", 100.0)
    model.add([record(phase="a", t0=101 + i * 0.1, ttft=0.05) for i in range(20)])
    model.add([record(phase="a", error="timeout", t0=102)])
    snap = model.snapshot({"w": WorkerSample(worker="w", time=104.5, users=3, target_rate=2.0)}, now=105.0)
    assert snap.requests == 21 and snap.errors == 1 and snap.users == 3
    assert snap.ttft_p50_ms == pytest.approx(50.0, abs=0.01)
    assert snap.achieved_rate == pytest.approx(21 / 5.0)
    model.set_phase("b", 106.0)
    assert model.snapshot({}, now=107.0).achieved_rate == 0.0  # the previous phase's requests are not counted


def test_progress_counts_down_the_phase_and_the_run() -> None:
    from coordinator.console import fmt_duration
    from coordinator.run.progress import ProgressModel, time_left

    model = ProgressModel()
    model.set_phase("warmup", 100.0, duration_s=30.0, later_s=3600.0)
    snap = model.snapshot({}, now=110.0)
    assert (snap.phase_left_s, snap.run_left_s) == (20.0, 3620.0)
    assert time_left(snap) == "20s (run 1:00:20)"
    model.set_phase("soak", 130.0, duration_s=3600.0, later_s=0.0)
    assert time_left(model.snapshot({}, now=130.0 + 3600 - 185)) == "3:05"  # the last phase: the run's own
    model.set_phase("cold", 200.0, duration_s=None, later_s=60.0)  # a cold start has no clock
    assert time_left(model.snapshot({}, now=201.0)) == "-"
    model.set_phase("level", 300.0, duration_s=10.0, later_s=None)  # a sweep's later levels are unknown
    assert time_left(model.snapshot({}, now=395.0)) == "0s" and fmt_duration(59.6) == "1:00"


def test_a_step_s_progress_is_one_line_with_the_time_left(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from coordinator.run.context import RunContext
    from coordinator.run.events import StepProgress
    from coordinator.run.progress import ProgressDisplay

    out = io.StringIO()
    display = ProgressDisplay("t", console=Console(file=out, width=200), live=False)
    ctx = RunContext(run_id="r", scenario=None, scenario_path=tmp_path, run_dir=tmp_path)  # type: ignore[arg-type]
    display.step_progress(StepProgress(ctx, "cold", 1, 3, "cold start 1 of 3: ready after 4.2 s", 8.4))
    display.step_progress(StepProgress(ctx, "cold", 3, 3, "cold start 3 of 3: ready after 4.0 s", 0.0))
    assert out.getvalue().splitlines() == [
        "cold start 1 of 3: ready after 4.2 s; about 8s left",
        "cold start 3 of 3: ready after 4.0 s",
    ]
