"""The comparison's parts, without services: the bootstrap, step matching, verdicts, thresholds files.

Samples are drawn from known distributions (lognormal latencies, a steady stream of request
ends), so a test knows what the interval must contain and what the verdict must be.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from coordinator.baselines.model import Baseline, Load, LoadKind, MetricStats, Provenance, Step, Tool
from coordinator.baselines.samples import StepSamples, from_columns
from coordinator.cli import cli
from coordinator.compare import intervals
from coordinator.compare.bootstrap import Blocked, Bootstrap, Interval, enough_tail
from coordinator.compare.comparison import compare
from coordinator.compare.matching import MatchedBy, match_steps
from coordinator.compare.metrics import Direction
from coordinator.compare.result import Comparison, Method, Verdict
from coordinator.compare.result import schema_json as compare_schema_json
from coordinator.compare.sides import Side
from coordinator.compare.tables import markdown, text
from coordinator.compare.thresholds import Limit, Thresholds, read_thresholds
from coordinator.compare.thresholds import schema_json as thresholds_schema_json
from coordinator.compare.verdict import judge
from coordinator.results.columns import columns_of
from coordinator.results.outcome import Outcome, decide, with_problem
from loadgen.errors import UserError
from tests.factories import record
from tests.paths import ROOT

# -- samples and steps ---------------------------------------------------------------------


def samples(rng: np.random.Generator, n: int = 2000, tpot_ms: float = 10.0, errors: float = 0.0) -> StepSamples:
    """``n`` requests of a steady stream over 60 s: lognormal TTFT around 50 ms, TPOT around ``tpot_ms``."""
    ok = rng.random(n) >= errors
    tokens = np.where(ok, rng.integers(20, 60, n), 0).astype(np.float64)
    ttft = rng.lognormal(np.log(50.0), 0.3, n)[ok]
    tpot = rng.lognormal(np.log(tpot_ms), 0.1, n)[ok]
    return StepSamples(
        ttft=ttft,
        tpot=tpot,
        e2e=ttft + tpot * (tokens[ok] - 1),
        itl=np.repeat(tpot, 5),
        ok=ok,
        output_tokens=tokens,
        duration_s=60.0,
        end_s=np.sort(rng.uniform(0, 60, n)),
    )


def _stats(values: np.ndarray, unit: str = "ms") -> MetricStats:
    p50, p90, p95, p99 = np.percentile(values, [50, 90, 95, 99])
    return MetricStats(
        unit="ms", n=values.size, mean=float(values.mean()), p50=p50, p90=p90, p95=p95, p99=p99,
        provenance=Provenance.RECORDS,
    )  # fmt: skip


def step_of(s: StepSamples, name: str = "steady", load: Load | None = None, has_samples: bool = True) -> Step:
    assert s.duration_s is not None
    rate = lambda v: MetricStats(unit="per_s", n=s.requests, mean=v / s.duration_s, provenance=Provenance.RECORDS)  # noqa: E731
    errors = int((~s.ok).sum())
    metrics = {name: _stats(s.latency(name)) for name in ("ttft", "tpot", "itl", "e2e")}
    metrics |= {
        "output_tokens_per_s": rate(float(s.output_tokens.sum())),
        "requests_per_s": rate(float(s.requests)),
        "goodput_per_s": rate(float(s.ok.sum())),
        "error_rate": MetricStats(unit="share", n=s.requests, mean=errors / s.requests, provenance=Provenance.RECORDS),
    }
    return Step(
        name=name,
        load=load,
        requests=s.requests,
        errors=errors,
        errors_by_class={"timeout": errors} if errors else {},
        duration_s=s.duration_s,
        metrics=metrics,
        has_samples=has_samples,
        samples_key=name if has_samples else None,
    )


def side(label: str, *steps: tuple[Step, StepSamples | None], tool: Tool = Tool.FINISHLINE) -> Side:
    baseline = Baseline(name="b", created=datetime.now(UTC), tool=tool, source=label, steps=[step for step, _ in steps])
    found = {(step.name, step.workload): s for step, s in steps if s is not None and step.has_samples}
    return Side(label, baseline, found)


def one_step(label: str, s: StepSamples, **kwargs: object) -> Side:
    return side(label, (step_of(s, **kwargs), s))  # type: ignore[arg-type]


# -- the bootstrap ---------------------------------------------------------------------------


def test_percentile_interval_holds_a_real_shift_and_zero_for_none() -> None:
    rng = np.random.default_rng(1)
    base = rng.lognormal(np.log(10.0), 0.2, 5000)
    same = rng.lognormal(np.log(10.0), 0.2, 5000)
    slower = rng.lognormal(np.log(12.0), 0.2, 5000)
    stats = [50.0, 90.0, 99.0]
    boot = Bootstrap(seed=0)

    def intervals_of(current: np.ndarray) -> list[Interval]:
        points = [float(np.percentile(current, q) - np.percentile(base, q)) for q in stats]
        return boot.percentile_intervals(Blocked.in_order(base), Blocked.in_order(current), stats, points)

    for interval in intervals_of(same):
        assert interval.low < 0 < interval.high
    for q, interval in zip(stats, intervals_of(slower), strict=True):
        true_shift = float(np.exp(np.log(12.0) + 0.2 * _z(q)) - np.exp(np.log(10.0) + 0.2 * _z(q)))
        assert interval.above_zero()
        assert interval.low < true_shift < interval.high, (q, interval, true_shift)


def _z(q: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(q / 100)


def test_the_same_inputs_give_the_same_intervals() -> None:
    rng = np.random.default_rng(2)
    a, b = samples(rng), samples(rng)
    first = compare(one_step("c", b), one_step("b", a), Thresholds())
    again = compare(one_step("c", b), one_step("b", a), Thresholds())
    assert first == again
    other_seed = compare(one_step("c", b), one_step("b", a), Thresholds(seed=7))
    assert [m.ci_low for s in other_seed.steps for m in s.metrics] != [m.ci_low for s in first.steps for m in s.metrics]


def test_grid_percentiles_agree_with_numpy() -> None:
    from coordinator.compare.bootstrap import _Grid

    values = np.random.default_rng(3).lognormal(np.log(30.0), 0.5, 20000)
    side_ = Blocked.in_order(values)
    grid = _Grid.over(values)
    cum = np.cumsum(grid.histograms(side_).sum(axis=0, keepdims=True), axis=1, dtype=np.float32)
    whole = grid.percentiles(cum, [50, 90, 99])[0]
    np.testing.assert_allclose(whole, np.percentile(values, [50, 90, 99]), rtol=0.005)


def test_a_tail_needs_values_beyond_it() -> None:
    assert enough_tail(500, 99) and not enough_tail(499, 99)
    assert enough_tail(10, 50) and not enough_tail(9, 50)
    assert not enough_tail(None, 50)


def test_rate_intervals_contain_the_delta_and_see_a_drop() -> None:
    rng = np.random.default_rng(4)
    a, b = samples(rng), samples(rng)
    boot = Bootstrap(seed=0)
    tokens_a, tokens_b = a.output_tokens.sum() / 60.0, b.output_tokens.sum() / 60.0
    found = intervals.rates(boot, a, b, {"output_tokens_per_s": tokens_b - tokens_a})
    assert found["output_tokens_per_s"].low < 0 < found["output_tokens_per_s"].high
    fewer = StepSamples(**{**_fields(b), "output_tokens": b.output_tokens * 0.8})
    drop = fewer.output_tokens.sum() / 60.0 - tokens_a
    found = intervals.rates(boot, a, fewer, {"output_tokens_per_s": drop})
    assert found["output_tokens_per_s"].below_zero()


def test_closed_loop_rates_resample_request_times() -> None:
    """With a fixed number of users the rate follows the time requests take: 10 % longer requests,
    10 % fewer tokens a second, and the interval sees it (windows of time would be too wide)."""
    rng = np.random.default_rng(10)
    a = samples(rng, n=400)
    spans = rng.lognormal(np.log(0.4), 0.2, 400)
    a = StepSamples(**{**_fields(a), "span_s": spans})
    slower = StepSamples(**{**_fields(a), "span_s": spans * 1.1, "duration_s": 66.0})
    drop = a.output_tokens.sum() / 66.0 - a.output_tokens.sum() / 60.0
    boot = Bootstrap(seed=0)
    closed = intervals.rates(boot, a, slower, {"output_tokens_per_s": drop}, closed=True)["output_tokens_per_s"]
    assert closed.below_zero() and closed.low < drop < closed.high
    same = intervals.rates(boot, a, a, {"output_tokens_per_s": 0.0}, closed=True)["output_tokens_per_s"]
    assert same.low < 0 < same.high


def _fields(s: StepSamples) -> dict[str, object]:
    return {name: getattr(s, name) for name in StepSamples.__dataclass_fields__}


def test_proportions_interval_of_no_errors_on_both_sides_holds_zero() -> None:
    interval = intervals.proportions((0, 0), (1000, 1000), 0.95)
    assert interval is not None and interval.low < 0 < interval.high
    worse = intervals.proportions((0, 60), (1000, 1000), 0.95)
    assert worse is not None and worse.above_zero()


# -- verdicts --------------------------------------------------------------------------------

TEN = Limit(relative=0.10)


@pytest.mark.parametrize(
    ("direction", "delta", "interval", "verdict"),
    [
        (Direction.LOWER, 2.0, Interval(1.0, 3.0), Verdict.WORSE),  # beyond and significant
        (Direction.LOWER, 2.0, Interval(-1.0, 3.0), Verdict.SAME),  # beyond, not significant
        (Direction.LOWER, 0.5, Interval(0.2, 0.8), Verdict.SAME),  # significant, not beyond
        (Direction.LOWER, -2.0, Interval(-3.0, -1.0), Verdict.BETTER),
        (Direction.HIGHER, -2.0, Interval(-3.0, -1.0), Verdict.WORSE),  # a throughput drop
        (Direction.HIGHER, 2.0, Interval(1.0, 3.0), Verdict.BETTER),
        (Direction.LOWER, 2.0, None, Verdict.WORSE),  # a point comparison: the threshold alone
        (Direction.LOWER, 0.5, None, Verdict.SAME),
    ],
)
def test_a_verdict_needs_the_threshold_and_significance(
    direction: Direction, delta: float, interval: Interval | None, verdict: Verdict
) -> None:
    assert judge(direction, 10.0, delta, TEN, interval).verdict is verdict


def test_limits_must_all_be_exceeded() -> None:
    both = Limit(relative=0.2, absolute_ms=5)
    assert not both.exceeded(3.0, 10.0)  # 30 % but only 3 ms
    assert not both.exceeded(6.0, 100.0)  # 6 ms but only 6 %
    assert both.exceeded(6.0, 20.0)
    assert Limit().exceeded(0.001, 10.0)  # no limit: any change


def test_twenty_percent_slower_tpot_is_worse_and_noise_is_not() -> None:
    rng = np.random.default_rng(5)
    base = one_step("base", samples(rng))
    same = compare(one_step("cur", samples(rng)), base, Thresholds())
    assert not same.regression and same.exit_code == 0
    slower = compare(one_step("cur", samples(rng, tpot_ms=12.0)), base, Thresholds())
    assert slower.regression and slower.exit_code == 1
    worse = {(m.metric, m.stat) for _, m in slower.worst_first() if m.verdict is Verdict.WORSE}
    assert {("tpot", "p50"), ("tpot", "p95"), ("itl", "p50")} <= worse
    assert ("tpot", "p99") not in worse  # 20 % is not beyond p99's default 20 %
    assert not any(metric == "ttft" for metric, _ in worse)
    assert all(m.method is Method.BOOTSTRAP for s in slower.steps for m in s.metrics if m.metric == "tpot")
    page = markdown(slower)
    first_row = next(line for line in page.splitlines() if line.startswith("| steady"))
    assert "worse" in first_row  # worst first
    assert "REGRESSION" in text(slower).splitlines()[-1]


def test_a_side_with_summaries_only_is_compared_as_points() -> None:
    rng = np.random.default_rng(6)
    s = samples(rng)
    summary_only = side("card", (step_of(s, has_samples=False), None), tool=Tool.CARD)
    result = compare(one_step("cur", samples(rng, tpot_ms=13.0)), summary_only, Thresholds())
    tpot = next(m for st in result.steps for m in st.metrics if m.metric == "tpot" and m.stat == "p50")
    assert tpot.method is Method.POINT and tpot.ci_low is None and tpot.verdict is Verdict.WORSE
    assert any("summaries only" in w for w in result.warnings)
    assert any("across tools" in w for w in result.warnings)
    assert result.comparable  # across tools: which metrics both define


def test_a_p99_of_few_requests_is_not_judged() -> None:
    rng = np.random.default_rng(7)
    result = compare(one_step("c", samples(rng, n=200, tpot_ms=15)), one_step("b", samples(rng, n=200)), Thresholds())
    rows = {(m.metric, m.stat): m for st in result.steps for m in st.metrics}
    assert rows[("tpot", "p99")].verdict is Verdict.UNJUDGED
    assert rows[("tpot", "p50")].verdict is Verdict.WORSE


def test_errors_by_class_are_compared() -> None:
    rng = np.random.default_rng(8)
    result = compare(one_step("c", samples(rng, errors=0.1)), one_step("b", samples(rng)), Thresholds())
    rows = {m.metric: m for st in result.steps for m in st.metrics}
    assert rows["error_rate"].verdict is Verdict.WORSE
    assert rows["error_rate.timeout"].method is Method.PROPORTIONS
    assert rows["error_rate.timeout"].verdict is Verdict.WORSE


def test_samples_from_columns_carry_end_times_and_good() -> None:
    records = [record(t0=100 + i, tokens=5, phase="steady") for i in range(4)] + [
        record(t0=110, error="timeout", phase="steady")
    ]
    cols = columns_of(records)
    rows = cols.of_phase("steady")
    met_slo = np.array([True, False, True, True, False])
    s = from_columns(cols, rows, 12.0, good=met_slo)
    assert s.requests == 5 and s.ttft.size == 4
    assert s.end_s is not None and s.end_s[0] == pytest.approx(0.05 + 4 * 0.01 + 0.001)
    assert s.span_s is not None and s.span_s[0] == pytest.approx(0.05 + 4 * 0.01 + 0.001)
    assert s.good is not None and s.good.tolist() == met_slo.tolist()


# -- matching --------------------------------------------------------------------------------


def _step(name: str, kind: LoadKind, value: float | None, workload: str = "all") -> Step:
    return Step(name=name, workload=workload, load=Load(kind=kind, value=value), requests=1)


def test_steps_match_by_name_then_by_load() -> None:
    current = [
        _step("steady", LoadKind.CONCURRENCY, 8),
        _step("ramp", LoadKind.CONCURRENCY, 16),
        _step("x", LoadKind.RATE, 2),
    ]
    baseline = [
        _step("concurrent@16", LoadKind.CONCURRENCY, 16),
        _step("steady", LoadKind.CONCURRENCY, 16),  # the name wins over the load
        _step("synchronous", LoadKind.SYNCHRONOUS, None),
    ]
    found = match_steps(current, baseline)
    pairs = [(m.current.name, m.baseline.name, m.by) for m in found.matches]
    assert pairs == [("steady", "steady", MatchedBy.NAME), ("ramp", "concurrent@16", MatchedBy.LOAD)]
    assert [s.name for s in found.unmatched_current] == ["x"]
    assert [s.name for s in found.unmatched_baseline] == ["synchronous"]
    assert "by load: concurrency 16" in found.matches[1].label
    sync = match_steps([_step("one", LoadKind.CONCURRENCY, 1)], baseline)
    assert [m.baseline.name for m in sync.matches] == ["synchronous"]


def test_no_matching_step_is_one_line() -> None:
    rng = np.random.default_rng(9)
    with pytest.raises(UserError, match=r"no step of c \(other\) matches a step of b \(steady\)"):
        compare(one_step("c", samples(rng), name="other"), one_step("b", samples(rng)), Thresholds())


# -- thresholds files ------------------------------------------------------------------------


def test_thresholds_file_sets_limits_and_keeps_defaults(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("metrics:\n  tpot: {relative: 0.05}\n  ttft.p99: {relative: 0.3, absolute_ms: 5}\n")
    t = read_thresholds(path)
    assert t.limit("tpot", "p99") == Limit(relative=0.05)  # the file's tpot wins over the default tpot.p99
    assert t.limit("ttft", "p99") == Limit(relative=0.3, absolute_ms=5)
    assert t.limit("ttft", "p50") == Limit(relative=0.10, absolute_ms=1.0)  # a default
    assert t.limit("error_rate.timeout", "mean") == Limit(absolute=0.01)
    assert t.limit("cold_start.ready", "p50").relative == 0.2
    assert read_thresholds(None) == Thresholds()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "metrics:\n  ttfb: {relative: 0.1}\n",
            r"t.yaml: metrics.ttfb: unknown metric; use one of ttft, ttft.p50, .*tpot",
        ),
        ("metrics:\n  ttft.p42: {relative: 0.1}\n", r"metrics.ttft.p42: unknown metric"),
        ("metrics:\n  tpot: {relativ: 0.1}\n", r"t.yaml: metrics.tpot.relativ: unknown key"),
        (
            "metrics:\n  requests_per_s: {absolute_ms: 3}\n",
            r"metrics.requests_per_s.absolute_ms: requests_per_s is not in ms",
        ),
        ("metrics:\n  tpot: {relative: -1}\n", r"metrics.tpot.relative: .*greater than or equal to 0"),
        ("confidence: 2\n", r"t.yaml: confidence: "),
        ("metrics: [\n", r"t.yaml: line \d+ not valid YAML"),
    ],
)
def test_a_bad_thresholds_file_is_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as raised:
        read_thresholds(path)
    assert "\n" not in str(raised.value)


def test_a_missing_thresholds_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"--thresholds: cannot read .*nope.yaml"):
        read_thresholds(tmp_path / "nope.yaml")


# -- the exported schemas --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "name", "produce"),
    [("--thresholds", "thresholds", thresholds_schema_json), ("--compare", "compare", compare_schema_json)],
)
def test_exported_schemas_are_current(flag: str, name: str, produce: object) -> None:
    committed = (ROOT / "docs" / f"{name}.schema.json").read_text()
    assert callable(produce)
    assert committed == produce(), f"run: finishline schema {flag} --output docs/{name}.schema.json"
    assert CliRunner().invoke(cli, ["schema", flag]).output == committed
    assert json.loads(committed)["additionalProperties"] is False


# -- the run's outcome with a comparison ----------------------------------------------------


def test_a_regression_never_hides_a_more_serious_outcome() -> None:
    regressed = with_problem(decide({}), Outcome.REGRESSION, "tpot p50 worse")
    assert (regressed.outcome, regressed.exit_code, regressed.reasons) == (Outcome.REGRESSION, 1, ("tpot p50 worse",))
    for serious, code in ((Outcome.PARTIAL, 3), (Outcome.INVALID, 4), (Outcome.SLO_MISSED, 5)):
        kept = with_problem(decide({serious: ["it happened"]}), Outcome.REGRESSION, "tpot p50 worse")
        assert (kept.outcome, kept.exit_code, kept.reasons) == (serious, code, ("it happened", "tpot p50 worse"))
    bad = with_problem(decide({Outcome.SLO_MISSED: ["slo"]}), Outcome.BAD_INPUT, "--baseline: no step matched")
    assert (bad.outcome, bad.reasons[0]) == (Outcome.BAD_INPUT, "--baseline: no step matched")


def test_identical_runs_of_a_thousand_requests_rarely_alarm() -> None:
    """The false-alarm rate of docs/compare.md, in small: ten pairs from one distribution."""
    rng = np.random.default_rng(11)
    alarms = sum(
        compare(one_step("c", samples(rng, n=1000)), one_step("b", samples(rng, n=1000)), Thresholds()).regression
        for _ in range(10)
    )
    assert alarms == 0


def _cold_side(label: str, ready_s: list[float]) -> Side:
    values = np.asarray(ready_s) * 1000.0
    stats = _stats(values)
    step = Step(
        name="cold",
        load=Load(kind=LoadKind.COLD_START, value=float(len(ready_s)), label="cold_start"),
        requests=len(ready_s),
        metrics={
            "cold_start.ready": stats,
            "cold_start.cold_penalty": MetricStats(
                unit="ms", n=5, mean=float(values.mean()), provenance=Provenance.RECORDS
            ),
        },
    )
    found = side(label, (step, None))
    return Side(label, found.baseline, {}, {"cold_start.ready": values})


def test_cold_starts_compare_medians_of_the_starts() -> None:
    base = _cold_side("b", [2.0, 2.1, 2.05, 1.95, 2.02])
    slower = compare(_cold_side("c", [3.0, 3.1, 2.9, 3.05, 2.95]), base, Thresholds())
    rows = {m.metric: m for s in slower.steps for m in s.metrics}
    assert rows["cold_start.ready"].stat == "p50" and rows["cold_start.ready"].method is Method.BOOTSTRAP
    assert rows["cold_start.ready"].verdict is Verdict.WORSE
    assert rows["cold_start.cold_penalty"].method is Method.POINT  # one figure a run
    same = compare(_cold_side("c", [2.01, 2.08, 2.0, 1.97, 2.04]), base, Thresholds())
    assert not same.regression


def test_the_html_page_overlays_both_sides() -> None:
    from coordinator.compare.page import page

    rng = np.random.default_rng(12)

    def two_steps(label: str, tpot: float) -> Side:
        low, high = samples(rng, n=300, tpot_ms=tpot), samples(rng, n=300, tpot_ms=tpot * 1.5)
        return side(
            label,
            (step_of(low, "c4", Load(kind=LoadKind.CONCURRENCY, value=4)), low),
            (step_of(high, "c16", Load(kind=LoadKind.CONCURRENCY, value=16)), high),
        )

    base, current = two_steps("b", 10.0), two_steps("c", 12.0)
    result = compare(current, base, Thresholds())
    html = page(result, current, base)
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html
    assert html.count("<svg") == 3  # each step's CDFs, and the throughput-latency curves
    assert "Throughput against latency" in html and "REGRESSION" in html


def test_an_imported_file_is_a_side_and_across_tools_the_ttft_is_flagged() -> None:
    from coordinator.compare.sides import resolve
    from tests.paths import DATA

    guidellm = resolve(str(DATA / "peer-results" / "guidellm-concurrent16-gpu8b.json"), Path("no-store"))
    assert guidellm.baseline.tool is Tool.GUIDELLM and guidellm.samples
    itself = compare(guidellm, guidellm, Thresholds())
    assert not itself.regression and not any("across tools" in w for w in itself.warnings)
    rng = np.random.default_rng(13)
    ours = one_step("run", samples(rng), name="steady", load=Load(kind=LoadKind.CONCURRENCY, value=16))
    across = compare(ours, guidellm, Thresholds())
    assert across.steps[0].matched_by == "load" and "by load: concurrency 16" in across.steps[0].match
    assert any("across tools" in w for w in across.warnings)
    assert any("client overhead" in w and "3-26 ms" in w for w in across.warnings)


def test_a_run_that_fails_fast_is_worse_in_its_failure_aware_percentiles() -> None:
    from coordinator.baselines.from_run import group_metrics
    from coordinator.results.summarize import summarize
    from tests.factories import record

    def step_of_records(error_every: int) -> Step:
        records = [
            record(
                t0=100 + i * 0.01,
                ttft=0.05 + (i % 10) / 1000,
                error="timeout" if error_every and i % error_every == 0 else None,
            )
            for i in range(1000)
        ]
        group = summarize(records).all
        return Step(
            name="steady",
            requests=group.count,
            errors=group.errors,
            errors_by_class=group.errors_by_class,
            duration_s=10.0,
            metrics=group_metrics(group),
            has_samples=False,
        )

    base = side("b", (step_of_records(0), None))
    failing = side("c", (step_of_records(20), None))  # 5% fail at once: the successes look no slower
    result = compare(failing, base, Thresholds())
    rows = {(m.metric, m.stat): m for m in result.steps[0].metrics}
    assert rows[("ttft", "p99")].verdict is Verdict.SAME  # success-only: nothing to see
    adjusted = rows[("ttft_failure_aware", "p99")]
    assert adjusted.current == float("inf") and adjusted.verdict is Verdict.WORSE
    assert rows[("ttft_failure_aware", "p50")].verdict is Verdict.SAME
    assert result.regression
    assert Comparison.model_validate_json(result.model_dump_json()) == result  # infinity survives JSON
    itself = compare(failing, failing, Thresholds())
    assert not itself.regression  # inf against inf is no change
