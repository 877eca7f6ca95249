"""Schedules in a real ``finishline serve`` (two runs of a target at a time): a schedule firing
every minute whose run lasts longer than a minute. The first firing starts a run; the second
finds it still going and is skipped, recorded as such naming the run. Beside it, a schedule of
short runs fires twice and completes both: its second run compared with ``baseline=previous`` is
compared with the first. A third schedule, paused as soon as it is made, never fires over the
same two minutes; resumed, it has a next firing again; deleted schedules are gone. Then the
scheduler alone, its clock given, on a real Redis: missed and rejected firings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from coordinator.service.access import AllowList
from coordinator.service.queue import RunQueue
from coordinator.service.scheduler import Scheduler
from coordinator.service.schedules import FiringOutcome, Schedule, ScheduleStore
from coordinator.service.store import RunStore
from coordinator.services.redis_server import RedisServer
from tests.factories import simulator_scenario
from tests.fixtures.service import Service, serving
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]


def _make(service: Service, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    answer = service.call("POST", "/schedules", json=body)
    assert answer.status_code == status, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _firings(service: Service, name: str, count: int) -> list[dict[str, Any]] | None:
    firings: list[dict[str, Any]] = service.call("GET", f"/schedules/{name}").json()["firings"]
    return firings if len(firings) >= count else None


@pytest.fixture
def two_at_a_time(tmp_path: Path) -> Iterator[Service]:
    yield from serving(tmp_path, "--per-target", "2")


def test_an_overlapping_firing_is_skipped_and_pause_resume_delete(two_at_a_time: Service, tmp_path: Path) -> None:
    service = two_at_a_time
    scenario = json.dumps(simulator_scenario(tmp_path, [{"name": "steady", "users": 1, "duration": "70s"}], workers=1))
    every_minute = {"cron": "* * * * *", "scenario": scenario}
    short = simulator_scenario(tmp_path, [{"name": "steady", "users": 2, "duration": "2s"}], workers=1, name="short")
    # make both schedules well inside a minute, so the paused one is paused before any firing
    wait_for(lambda: time.time() % 60 < 50, timeout=15, what="a moment well before the next minute")

    idle = _make(service, {"name": "idle", **every_minute})
    assert idle["next_fire"] is not None and idle["firings"] == []
    paused = service.call("POST", "/schedules/idle/pause").json()
    assert paused["paused"] is True and paused["next_fire"] is None

    soak = _make(service, {"name": "soak", "timezone": "Europe/Paris", **every_minute})
    assert soak["next_fire"] % 60 == 0 and soak["next_fire_local"].endswith(("+01:00", "+02:00"))  # Paris
    quick = _make(service, {"name": "quick", "cron": "* * * * *", "scenario": json.dumps(short)})
    assert quick["next_fire"] == soak["next_fire"]

    # refused, naming the field, and nothing kept
    assert _make(service, {"name": "bad", **every_minute, "cron": "61 * * * *"}, 422)["field"] == "cron"
    assert _make(service, {"name": "bad", **every_minute, "timezone": "Mars/Olympus"}, 422)["field"] == "timezone"
    assert _make(service, {"name": "soak", **every_minute}, 409)["field"] == "name"
    elsewhere = simulator_scenario(tmp_path, [{"name": "steady", "users": 1, "duration": "1s"}])
    elsewhere["target"] = {"kind": "url", "base_url": "http://10.0.0.1:8000/v1", "model": "m"}
    refused = _make(service, {"name": "bad", "cron": "* * * * *", "scenario": json.dumps(elsewhere)}, 403)
    assert refused["field"] == "scenario.target.base_url"
    assert [s["name"] for s in service.call("GET", "/schedules").json()["schedules"]] == ["idle", "quick", "soak"]

    first = wait_for(lambda: _firings(service, "soak", 1), timeout=75, what="the first firing")[0]
    assert first["outcome"] == "started" and first["due"] == soak["next_fire"], first
    run_id = first["run"]
    assert service.run(run_id)["source"] == "schedule:soak"

    second = wait_for(lambda: _firings(service, "soak", 2), timeout=75, what="the second firing")[0]
    assert second["outcome"] == "skipped" and second["due"] == first["due"] + 60, second
    assert second["run"] == run_id and second["note"] == f"previous run {run_id} still running"
    assert service.run(run_id)["status"] == "running"

    # the quick schedule's two runs, each complete before the next firing: the second compared
    # with the first by baseline=previous
    quick_firings = wait_for(lambda: _firings(service, "quick", 2), timeout=30, what="the quick schedule's firings")
    assert [f["outcome"] for f in quick_firings] == ["started", "started"], quick_firings
    later, earlier = (f["run"] for f in quick_firings)  # newest first
    ended = wait_for(lambda: service.ended(later), timeout=60, what="the quick schedule's second run")
    assert service.run(earlier)["status"] == ended["status"] == "complete", (service.run(earlier), ended)
    compared = service.call("GET", f"/runs/{later}/compare", params={"baseline": "previous"})
    assert compared.status_code == 200, compared.text
    comparison = compared.json()
    assert comparison["current"]["source"] == ended["run_dir"]
    assert comparison["baseline"]["source"] == service.run(earlier)["run_dir"]
    assert comparison["steps"] and comparison["exit_code"] in (0, 1)
    first_of_its_schedule = service.call("GET", f"/runs/{earlier}/compare", params={"baseline": "previous"})
    assert first_of_its_schedule.status_code == 404 and first_of_its_schedule.json()["field"] == "baseline"

    assert service.call("GET", "/schedules/idle").json()["firings"] == []  # paused over both firings
    resumed = service.call("POST", "/schedules/idle/resume").json()
    assert resumed["paused"] is False and resumed["next_fire"] > time.time()
    assert service.call("DELETE", "/schedules/idle").status_code == 204
    assert service.call("DELETE", "/schedules/soak").status_code == 204
    assert service.call("DELETE", "/schedules/quick").status_code == 204
    assert service.call("GET", "/schedules/soak").status_code == 404
    assert service.call("GET", "/schedules").json()["schedules"] == []

    assert service.call("POST", f"/runs/{run_id}/cancel").status_code == 202
    ended = wait_for(lambda: service.ended(run_id), timeout=60, what="the cancelled run's end")
    assert ended["status"] == "partial"
    runs = {run["id"] for run in service.call("GET", "/runs").json()["runs"]}
    assert runs == {run_id, earlier, later}  # none from idle
    before = service.call("GET", f"/runs/{run_id}/compare", params={"baseline": "previous"})
    assert before.status_code == 404 and before.json()["field"] == "baseline"  # the schedule's first run


def test_missed_and_rejected_firings_are_recorded(redis_server: RedisServer, tmp_path: Path) -> None:
    """The scheduler itself, its clock given: after three nights down, past the grace window,
    the firings are one ``missed`` entry and nothing runs; a scenario the allow-lists no longer
    allow is ``rejected`` naming the field, and no run is queued."""
    client = redis.Redis.from_url(redis_server.url)
    queue = RunQueue(RunStore(client), tmp_path / "runs")
    store = ScheduleStore(client)
    elsewhere = simulator_scenario(tmp_path, [{"name": "steady", "users": 1, "duration": "1s"}])
    elsewhere["target"] = {"kind": "url", "base_url": "http://10.0.0.1:8000/v1", "model": "m"}
    night = datetime(2026, 12, 1, 3, tzinfo=UTC).timestamp()
    store.add(
        Schedule(
            name="nightly", cron="0 2 * * *", scenario=json.dumps(elsewhere), created_at=night, handled_until=night
        )
    )
    scheduler = Scheduler(store, queue, AllowList())

    scheduler.tick(night + 3 * 86400 + 3600)  # 4 Dec 04:00: the 02:00 firing is two hours old
    [missed] = store.firings("nightly")
    assert missed.outcome is FiringOutcome.MISSED and missed.run is None
    assert missed.note is not None and missed.note.startswith("3 firing(s) missed")
    scheduler.tick(night + 3 * 86400 + 3601)
    assert len(store.firings("nightly")) == 1  # handled once

    scheduler.tick(night + 4 * 86400 - 3600 + 5)  # 5 Dec 02:00:05
    rejected = store.firings("nightly")[0]
    assert rejected.outcome is FiringOutcome.REJECTED and rejected.note is not None
    assert rejected.note.startswith("target.base_url:") and queue.store.all() == []
