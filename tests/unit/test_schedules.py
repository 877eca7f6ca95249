"""Schedules: next firings in a time zone, the missed-firing policy (the clock is a parameter),
the model's errors naming the field, and which run is a scheduled run's previous one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from coordinator.service.app import previous_run
from coordinator.service.models import RunState, ServiceRun
from coordinator.service.schedules import GRACE_S, ScheduleSpec, next_fire, plan_firings


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_next_fire_is_read_in_the_schedule_time_zone_across_daylight_saving() -> None:
    # 09:00 in Paris is 07:00 UTC in summer and 08:00 UTC in winter
    assert next_fire("0 9 * * *", "Europe/Paris", at("2026-07-01T00:00:00")) == at("2026-07-01T07:00:00")
    assert next_fire("0 9 * * *", "Europe/Paris", at("2026-12-01T00:00:00")) == at("2026-12-01T08:00:00")
    assert next_fire("0 9 * * *", "UTC", at("2026-12-01T00:00:00")) == at("2026-12-01T09:00:00")
    # strictly after: a firing at the very instant is the one before
    assert next_fire("* * * * *", "UTC", at("2026-12-01T00:01:00")) == at("2026-12-01T00:02:00")
    # across the spring change (Paris skips 02:00-03:00 on 29 March 2026), the day after is 09:00 again
    assert next_fire("0 9 * * *", "Europe/Paris", at("2026-03-29T08:00:00")) == at("2026-03-30T07:00:00")


def test_nothing_is_due_before_the_next_firing() -> None:
    plan = plan_firings("0 2 * * *", "UTC", at("2026-12-01T03:00:00"), at("2026-12-02T01:59:59"))
    assert plan.run is None and plan.missed == () and plan.handled_until == at("2026-12-01T03:00:00")


def test_a_firing_found_on_time_runs_and_nothing_is_missed() -> None:
    plan = plan_firings("0 2 * * *", "UTC", at("2026-12-01T03:00:00"), at("2026-12-02T02:00:01"))
    assert plan.run == at("2026-12-02T02:00:00") and plan.missed_count == 0 and plan.missed == ()
    assert plan.handled_until == plan.run
    again = plan_firings("0 2 * * *", "UTC", plan.handled_until, at("2026-12-02T02:00:02"))
    assert again.run is None and again.missed_count == 0  # one firing, handled once


def test_after_downtime_the_latest_firing_runs_once_within_the_grace_window() -> None:
    # down from 1 Dec 03:00 to 4 Dec 02:10: three nightly firings due, the last 10 min ago
    plan = plan_firings("0 2 * * *", "UTC", at("2026-12-01T03:00:00"), at("2026-12-04T02:10:00"))
    assert plan.run == at("2026-12-04T02:00:00")
    assert plan.missed_count == 2 and plan.missed == (at("2026-12-02T02:00:00"), at("2026-12-03T02:00:00"))
    assert plan.handled_until == at("2026-12-04T02:00:00")


def test_after_downtime_past_the_grace_window_every_firing_is_missed() -> None:
    now = at("2026-12-04T02:00:00") + GRACE_S + 1
    plan = plan_firings("0 2 * * *", "UTC", at("2026-12-03T03:00:00"), now)
    assert plan.run is None and plan.missed_count == 1 and plan.missed == (at("2026-12-04T02:00:00"),)
    assert plan.handled_until == at("2026-12-04T02:00:00")


def test_a_long_downtime_is_counted_without_stepping_through_every_firing() -> None:
    plan = plan_firings("* * * * *", "UTC", at("2026-01-01T00:00:00"), at("2026-12-01T00:00:30"))
    assert plan.run == at("2026-12-01T00:00:00") and not plan.exact and plan.missed_count >= 9_999
    assert plan.missed[0] == at("2026-01-01T00:01:00")


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [("cron", "every day", "not a cron expression"), ("timezone", "Mars/Olympus", "not a time zone")],
)
def test_a_bad_cron_or_time_zone_names_its_field(field: str, value: str, said: str) -> None:
    body = {"name": "nightly", "cron": "0 2 * * *", "timezone": "UTC", "scenario": "name: x", field: value}
    with pytest.raises(ValidationError) as caught:
        ScheduleSpec.model_validate(body)
    problem = caught.value.errors()[0]
    assert problem["loc"] == (field,) and said in problem["msg"]


def _run(run_id: str, source: str, submitted: float, status: RunState) -> ServiceRun:
    return ServiceRun(
        id=run_id, name="soak", target="simulator", status=status, submitted=submitted, source=source, run_dir=run_id
    )


def test_the_previous_run_is_the_last_complete_one_of_the_same_schedule() -> None:
    runs = [
        _run("a", "schedule:nightly", 1, RunState.COMPLETE),
        _run("b", "schedule:nightly", 2, RunState.COMPLETE),
        _run("c", "schedule:other", 3, RunState.COMPLETE),
        _run("d", "schedule:nightly", 4, RunState.FAILED),
        _run("e", "schedule:nightly", 5, RunState.COMPLETE),
        _run("f", "schedule:nightly", 6, RunState.COMPLETE),
    ]
    assert previous_run(runs, runs[4]) == runs[1]  # not the other schedule's, not the failed one, not a later one
    assert previous_run(runs, runs[0]) is None
