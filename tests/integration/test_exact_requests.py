"""A phase with ``requests: N`` sends exactly N requests, as GuideLLM's ``max_requests`` does: closed
users far outnumbering what is left, an open-loop rate, multi-turn sessions, several workers;
the records and the simulator's own trace both count N."""

from __future__ import annotations

from pathlib import Path

import orjson

from coordinator.results.summary import read_summary
from tests.factories import synthetic_workload, write_scenario
from tests.fixtures.cli import finishline, the_run_dir


def test_every_phase_with_requests_sends_exactly_that_many(tmp_path: Path) -> None:
    phases = [
        {"name": "closed", "users": 96, "requests": 400},  # 96 in flight when the 400th begins
        {"name": "open", "rate": 40, "requests": 90},
        {"name": "sessions", "users": 24, "requests": 101},  # 3-turn sessions: an odd count ends one mid-way
    ]
    scenario = {
        "name": "exact",
        "target": {"kind": "simulator", "preset": "gpu-8b"},
        "workloads": [synthetic_workload("chat", 32, 8, session={"turns": 3})],
        "phases": phases,
        "workers": 3,
        "selfcheck": {"dispatch_delay_ms": 1000},  # counts are the point here, not a loaded machine's timing
        "output_dir": str(tmp_path / "runs"),
    }
    done = finishline("run", str(write_scenario(tmp_path, scenario)), "--no-live", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = the_run_dir(tmp_path)
    summary = read_summary(run_dir / "summary.json")
    assert {name: summary.phases[name].count for name in ("closed", "open", "sessions")} == {
        "closed": 400,
        "open": 90,
        "sessions": 101,
    }
    assert summary.all.errors == 0
    trace = (run_dir / "simulator_trace.jsonl").read_bytes().splitlines()
    preflight = summary.phases["preflight"].count  # the pre-flight check's one streamed request
    assert len(trace) == 591 + preflight  # the server saw no request more
    assert all(orjson.loads(line)["outcome"] == "ok" for line in trace)
