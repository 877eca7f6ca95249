"""The sweep's definitions (knee, capacity under the SLO, batching efficiency), its bisection
midpoints, the sweep phase's validation, and the report section drawn from sweep.json."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from coordinator.plan.steps import build_plan, sweep_step
from coordinator.results.sweep import RESULT_FILE, Level, SweepResult, annotate, capacity_of, knee_of, render_section
from coordinator.run.sweep import _midpoint
from coordinator.scenario.models import Scenario
from coordinator.scenario.phases import SweepPhase


def level(n: float, throughput: float, attainment: float | None = None) -> Level:
    return Level(
        phase=f"sweep.u{n:g}",
        level=n,
        duration_s=5.0,
        requests=100,
        errors=0,
        output_tokens_per_s=throughput,
        requests_per_s=throughput / 64,
        slo_attainment=attainment,
    )


# A server with 8 sequence slots: throughput in proportion to the load up to 8, flat after.
SLOTS_8 = [level(1, 100), level(2, 200), level(4, 400), level(8, 800), level(16, 820), level(32, 815)]


def test_the_knee_is_the_last_level_before_throughput_stops_growing_with_the_load() -> None:
    assert knee_of(SLOTS_8, gain=0.5) == 8
    assert knee_of(SLOTS_8[:4], gain=0.5) is None  # still proportional: not reached
    # Measured out of order (bisection levels come last): the knee is found by level.
    assert knee_of([*SLOTS_8[3:], *SLOTS_8[:3], level(11, 810)], gain=0.5) == 8


def test_the_knee_gain_sets_how_much_growth_still_counts() -> None:
    # 8 -> 16 gives ln(1.3)/ln(2) = 0.38: past the knee at gain 0.5, not at gain 0.3.
    levels = [level(1, 100), level(2, 200), level(4, 400), level(8, 800), level(16, 1040), level(32, 1050)]
    assert knee_of(levels, gain=0.5) == 8
    assert knee_of(levels, gain=0.3) == 16


def test_elasticity_and_batching_efficiency_are_from_the_level_below_and_the_lowest_level() -> None:
    annotated = annotate(SLOTS_8)
    assert annotated[0].elasticity is None and annotated[0].batching_efficiency == 1.0
    assert annotated[1].elasticity == pytest.approx(1.0)
    assert annotated[4].batching_efficiency == pytest.approx(820 / (16 * 100))
    assert annotated[5].elasticity == pytest.approx(-0.0088, abs=1e-3)


def test_capacity_is_the_highest_level_keeping_the_slo_below_the_first_that_misses_it() -> None:
    levels = [level(1, 100, 1.0), level(2, 200, 1.0), level(4, 400, 0.97), level(8, 800, 0.8), level(16, 820, 0.96)]
    assert capacity_of(levels, 0.95) == 4  # 16 keeps it again, but only after 8 missed it
    assert capacity_of(levels, 0.5) == 16
    assert capacity_of(levels, 1.0) == 2
    assert capacity_of([level(1, 100, 0.4)], 0.9) is None
    assert capacity_of(SLOTS_8, None) is None  # no SLOs
    assert capacity_of([level(1, 100, None)], 0.9) is None


@pytest.mark.parametrize(
    ("low", "high", "whole", "mid"),
    [(8, 16, True, 11), (8, 11, True, 9), (8, 9, True, None), (8, 10, True, 9), (1.0, 4.0, False, 2.0)],
)
def test_bisection_takes_the_geometric_midpoint_until_no_level_is_left_between(
    low: float, high: float, whole: bool, mid: float | None
) -> None:
    assert _midpoint(low, high, whole) == mid


def test_rate_levels_closer_than_two_percent_are_not_bisected() -> None:
    assert _midpoint(10.0, 10.1, whole=False) is None


def sweep(**fields: object) -> dict[str, object]:
    return {"kind": "sweep", "name": "sweep", "step_duration": "5s", **fields}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "exactly one of users"),
        ({"users": [1, 2], "rates": [1.0]}, "exactly one of users"),
        ({"users": [4, 2]}, "levels must rise"),
        ({"users": [2, 2, 4]}, "levels must rise"),
        ({"users": "auto", "step_duration": None}, "step_duration and/or step_requests"),
        ({"users": "auto", "knee_gain": 1.5}, "knee_gain"),
        ({"users": "auto", "factor": 1.0}, "factor"),
    ],
)
def test_a_sweep_phase_that_cannot_run_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SweepPhase.model_validate(sweep(**fields))


def test_each_level_is_a_step_named_by_its_index_and_load() -> None:
    closed = SweepPhase.model_validate(sweep(users="auto"))
    step = sweep_step(closed, workers=2, level=16, index=5)
    assert step.name == "sweep.5-u16" and step.command.users == 16
    open_loop = SweepPhase.model_validate(sweep(rates=[0.5, 2.0], arrival={"kind": "poisson"}))
    step = sweep_step(open_loop, workers=2, level=2.0, index=2)
    assert step.name.startswith("sweep.2-r2") and step.command.rate == 2.0


def test_a_sweep_is_run_by_its_registered_runner_not_planned_ahead() -> None:
    scenario = Scenario.model_validate(
        {
            "name": "s",
            "target": {"kind": "url", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
            "workloads": [{"name": "w", "prompt": {"kind": "synthetic", "tokens": 8}, "output": 8}],
            "phases": [sweep(users="auto")],
        }
    )
    plan = build_plan(scenario)
    assert plan.drives_locust and not plan.locust_steps()


def test_the_report_section_names_the_knee_and_the_capacity(tmp_path: Path) -> None:
    assert render_section(tmp_path) == ""  # no sweep in this run
    levels = annotate([level(1, 100, 1.0), level(2, 200, 1.0), level(4, 400, 1.0), level(8, 800, 1.0)])
    levels += annotate([level(8, 800), level(16, 810, 0.5)])[1:]
    result = SweepResult(
        phase="sweep",
        mode="concurrency",
        knee_gain=0.5,
        slo_target=0.95,
        levels=levels,
        knee=8,
        capacity=8,
        stopped="past the knee and the SLO attainment",
    )
    (tmp_path / RESULT_FILE).write_text(result.model_dump_json())
    section = render_section(tmp_path)
    assert "Knee: <b>8 users</b>" in section
    assert "Capacity under the SLO: <b>8 users</b>" in section
    assert "<svg" in section and section.count("<tr>") == 1 + 5


def test_an_automatic_sweep_bounds_how_many_levels_it_may_run() -> None:
    from coordinator.run.sweep import most_levels

    # 1, 2, 4, ..., 1024: eleven levels, then three bisection steps
    assert most_levels(SweepPhase.model_validate(sweep(users="auto"))) == 11 + 3
    assert most_levels(SweepPhase.model_validate(sweep(users="auto", max_level=8, bisect=0))) == 4  # 1, 2, 4, 8
    assert most_levels(SweepPhase.model_validate(sweep(users="auto", start=10, factor=3, max_level=100))) == 3 + 3
