"""``finishline serve`` as a user runs it: a real service process with its own persisted
redis-server, real ``finishline run`` processes of tiny simulator scenarios, HTTP from here.

One service lifetime covers the queue, a cancel and a restart mid-run, so the file stays short:
two runs of one target (the second waits with position 1), the first cancelled (partial, exit
130, its records kept), the service restarted while the second runs (found, watched to its end,
its summary, report and records intact), then a baseline saved from it and compared with.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.factories import simulator_scenario
from tests.fixtures.service import Service
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _submit(service: Service, scenario: dict[str, Any]) -> dict[str, Any]:
    answer = service.call("POST", "/runs", data=json.dumps(scenario))
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _records(service: Service, run_id: str) -> list[str]:
    answer = service.call("GET", f"/runs/{run_id}/records")
    assert answer.status_code == 200, answer.text
    return [line for line in gzip.decompress(answer.content).decode().splitlines() if line]


def test_refused_requests_name_what_is_wrong_and_change_nothing(service: Service, tmp_path: Path) -> None:
    assert service.call("GET", "/health", token=None).json()["status"] == "ok"
    for token in (None, "wrong"):
        answer = service.call("GET", "/runs", token=token)
        assert answer.status_code == 401 and answer.json()["field"] == "Authorization"
    scenario = simulator_scenario(tmp_path, [{"name": "steady", "users": 1, "duration": "2s"}])
    away = {**scenario, "target": {"kind": "url", "base_url": "http://10.9.8.7:8000/v1", "model": "m"}}
    answer = service.call("POST", "/runs", data=json.dumps(away))
    assert answer.status_code == 403 and answer.json()["field"] == "target.base_url"
    assert "http://10.9.8.7:8000/v1" in answer.json()["error"]
    image = {**scenario, "target": {"kind": "docker", "image": "evil/model:1"}}
    answer = service.call("POST", "/runs", data=json.dumps(image))
    assert answer.status_code == 403 and answer.json()["field"] == "target.image"
    assert "evil/model:1" in answer.json()["error"]
    bad = {**scenario, "phases": [{"name": "steady", "users": "many", "duration": "2s"}]}
    answer = service.call("POST", "/runs", data=json.dumps(bad))
    assert answer.status_code == 422 and answer.json()["field"].startswith("phases[0]"), answer.text
    answer = service.call("POST", "/runs", data="name: [unclosed")
    assert answer.status_code == 422, answer.text
    answer = service.call("GET", "/runs/nope")
    assert answer.status_code == 404 and answer.json()["field"] == "id"
    assert service.call("GET", "/runs").json() == {"runs": []}  # nothing was queued by any of these
    assert service.call("GET", "/openapi.json").json()["openapi"].startswith("3.")


def test_queue_cancel_restart_and_results(service: Service, tmp_path: Path) -> None:
    long = simulator_scenario(tmp_path, [{"name": "steady", "users": 2, "duration": "60s"}], workers=1, name="long")
    short = simulator_scenario(tmp_path, [{"name": "steady", "users": 2, "duration": "8s"}], workers=1, name="short")
    first = _submit(service, long)
    second = _submit(service, short)
    assert first["status"] == "running" and first["target"] == "simulator"
    assert second["status"] == "queued" and second["queue_position"] == 1  # one run per target at a time

    wait_for(lambda: service.begun(first["id"]), timeout=60, what="the first run's requests")
    live = wait_for(
        lambda: (run := service.run(first["id"])["live"]) and run["users"] and run, timeout=10, what="live figures"
    )
    assert (live["phase"], live["phases_planned"], live["progress"]) == ("steady", ["steady"], 0.0), live
    answer = service.call("POST", f"/runs/{first['id']}/cancel")
    assert answer.status_code == 202, answer.text
    cancelled = wait_for(lambda: service.ended(first["id"]), timeout=60, what="the cancelled run's end")
    assert (cancelled["status"], cancelled["exit_code"], cancelled["outcome"]) == ("partial", 130, "interrupted")
    summary = service.call("GET", f"/runs/{first['id']}/summary").json()
    assert summary["run"]["records"] > 0
    assert len(_records(service, first["id"])) == summary["run"]["records"]  # what was measured is kept

    wait_for(lambda: service.begun(second["id"]), timeout=60, what="the second run to start once the first ended")
    service.stop()  # a restart while the second run goes on in its own session
    service.start()
    listed = {run["id"]: run for run in service.call("GET", "/runs").json()["runs"]}
    assert set(listed) == {first["id"], second["id"]}
    assert listed[first["id"]]["exit_code"] == 130
    done = wait_for(lambda: service.ended(second["id"]), timeout=90, what="the second run's end after the restart")
    assert (done["status"], done["exit_code"]) == ("complete", 0), done
    summary = service.call("GET", f"/runs/{second['id']}/summary").json()
    assert summary["status"] == "complete" and len(_records(service, second["id"])) == summary["run"]["records"] > 0
    report = service.call("GET", f"/runs/{second['id']}/report")
    assert report.status_code == 200 and report.headers["Content-Type"].startswith("text/html")
    assert "<html" in report.text.lower()

    saved = service.call("POST", "/baselines", json={"name": "short-main", "run": second["id"]})
    assert saved.status_code == 201, saved.text
    assert [b["name"] for b in service.call("GET", "/baselines").json()["baselines"]] == ["short-main"]
    compared = service.call("GET", f"/runs/{second['id']}/compare", params={"baseline": "short-main"})
    assert compared.status_code == 200, compared.text
    assert compared.json()["regression"] is False and compared.json()["steps"]  # a run against itself
    missing = service.call("GET", f"/runs/{second['id']}/compare", params={"baseline": "nope"})
    assert missing.status_code == 404 and missing.json()["field"] == "baseline"
    assert service.call("POST", f"/runs/{second['id']}/cancel").status_code == 409


def test_a_run_that_ends_while_the_service_is_down_is_finished_from_its_summary_and_keeps_no_secret(
    service: Service, tmp_path: Path, simulator: Any
) -> None:
    secret = "hunter2-header-value"
    with simulator(preset="instant") as sim:
        scenario = simulator_scenario(
            tmp_path,
            [{"name": "steady", "users": 2, "duration": "3s"}],
            workers=1,
            target={
                "kind": "url",
                "base_url": f"{sim.base_url}/v1",
                "model": "finishline-sim",
                "headers": {"X-Api-Key": secret},
            },
        )
        run = _submit(service, scenario)
        assert run["target"] == f"{sim.base_url}/v1"
        service.stop()
        process = psutil.Process(run["process"]["pid"])
        process.wait(timeout=90)  # the run goes on without the service, and ends
        service.start()
        done = wait_for(lambda: service.ended(run["id"]), timeout=30, what="the run finished from its summary")
    assert (done["status"], done["exit_code"], done["outcome"]) == ("complete", 0, "ok"), done
    assert len(_records(service, run["id"])) > 0
    answers = service.call("GET", "/runs").text + service.call("GET", f"/runs/{run['id']}").text
    assert secret not in answers
    kept = [p for p in service.runs_dir.rglob("*") if p.is_file()]  # the run's files, the service's AOF
    assert any(p.name == "scenario.yaml" for p in kept) and any(".aof" in p.name for p in kept)
    for path in kept:
        assert secret.encode() not in path.read_bytes(), path  # the submitted scenario is gone once read


def test_a_run_killed_with_the_service_is_recovered_on_restart(service: Service, tmp_path: Path) -> None:
    scenario = simulator_scenario(tmp_path, [{"name": "steady", "users": 2, "duration": "60s"}], workers=1)
    run = _submit(service, scenario)
    wait_for(lambda: service.begun(run["id"]), timeout=60, what="the run's requests")
    coordinator = psutil.Process(run["process"]["pid"])
    left = coordinator.children(recursive=True)  # its workers, Redis, simulator: in their own sessions
    service.kill()  # its redis-server is left running, holding the append-only file
    coordinator.kill()  # no chance to write its results
    coordinator.wait(timeout=10)
    service.start()
    done = wait_for(lambda: service.ended(run["id"]), timeout=90, what="the killed run recovered")
    assert done["status"] == "recovered", done
    summary = service.call("GET", f"/runs/{run['id']}/summary").json()
    assert len(_records(service, run["id"])) == summary["run"]["records"] > 0  # what it measured is kept
    _, alive = psutil.wait_procs(left, timeout=15)
    assert not alive, alive  # what it left running is stopped
