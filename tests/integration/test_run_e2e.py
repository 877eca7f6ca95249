"""``finishline run`` end to end against the real simulator, Locust, redis-server (all real).

- two workers, two workloads: as many records as the simulator's trace has requests; the
  summary's percentiles are numpy's over the records' raw timestamps, and each request's TTFT,
  TPOT and E2E agree with the simulator's own clock (median gap under 2 ms);
- Ctrl-C (SIGINT) mid-run: no process left, records so far kept, summary marked partial.
"""

from __future__ import annotations

import gzip
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil
import pytest

from coordinator.results.collector import read_records
from coordinator.results.status import RunStatus
from coordinator.results.summary import read_summary
from loadgen.records import RequestRecord
from tests.factories import simulator_scenario, write_scenario
from tests.fixtures.cli import descendants, start_finishline, the_run_dir, wait_gone
from tests.fixtures.simulator import MEDIAN_GAP_MS, P90_GAP_MS
from tests.fixtures.waiting import wait_for


def _scenario(tmp: Path, *phases: dict[str, Any], **fields: Any) -> Path:
    return write_scenario(tmp, simulator_scenario(tmp, list(phases), **fields))


def _trace_size(tmp: Path) -> int:
    """Bytes of the simulator's trace so far (one line per finished request)."""
    runs = tmp / "runs"
    trace = [d / "simulator_trace.jsonl" for d in runs.iterdir()] if runs.exists() else []
    return trace[0].stat().st_size if trace and trace[0].exists() else 0


def _server_metrics(t: dict[str, Any]) -> dict[str, float]:
    """TTFT, TPOT and E2E (ms) of one request by the simulator's ground truth (its own clock)."""
    figures = {
        "ttft": (t["token_times"][0] - t["arrival"]) * 1000,
        "e2e": (t["finish"] - t["arrival"]) * 1000,
    }
    if t["output_tokens"] > 1:
        figures["tpot"] = (t["finish"] - t["token_times"][0]) / (t["output_tokens"] - 1) * 1000
    return figures


def _client_metrics(r: RequestRecord) -> dict[str, float]:
    """The same figures from a record's raw timestamps, computed here without ``loadgen.metrics``."""
    a = r.final
    assert a.first_token is not None and a.output_tokens is not None
    figures = {"ttft": (a.first_token - a.sent) * 1000, "e2e": (a.end - a.sent) * 1000}
    if a.output_tokens > 1:
        figures["tpot"] = (a.end - a.first_token) / (a.output_tokens - 1) * 1000
    return figures


def test_two_workers_two_workloads_match_the_simulator_trace(tmp_path: Path) -> None:
    path = _scenario(tmp_path, {"name": "steady", "users": 4, "think_time": 0.1, "duration": "20s"})
    proc = start_finishline("run", str(path), "--no-live")
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    run_dir = the_run_dir(tmp_path)
    for name in (
        "records.jsonl.gz",
        "summary.json",
        "summary.csv",
        "report.html",
        "scenario.yaml",
        "environment.json",
        "simulator_trace.jsonl",
    ):
        assert (run_dir / name).exists(), name
    records = list(read_records(run_dir / "records.jsonl.gz"))
    trace = [orjson.loads(line) for line in (run_dir / "simulator_trace.jsonl").read_bytes().splitlines() if line]
    assert len(records) == len(trace) > 100
    assert len({r.id for r in records}) == len(records)
    assert [r.workload for r in records if r.phase == "preflight"] == ["preflight"]  # the pre-flight request
    assert {r.workload for r in records if r.phase != "preflight"} == {"chat", "summarise"}
    assert len({r.worker for r in records if r.phase != "preflight"}) == 2
    assert all(r.ok for r in records), {r.outcome for r in records}
    # one record per server-side request, matched by the completion id the server sent
    assert sorted(r.final.response_id or "" for r in records) == sorted(t["id"] for t in trace)

    summary = read_summary(run_dir / "summary.json")
    assert summary.status == RunStatus.COMPLETE and not summary.partial
    assert summary.all.count == summary.phases["steady"].count == len(trace) - 1  # not the pre-flight
    steady = [r for r in records if r.phase == "steady"]
    # 1. the summary is exact: its percentiles are numpy's over the records' own timestamps
    mine: dict[str, list[float]] = {name: [] for name in ("ttft", "tpot", "e2e")}
    for record in steady:
        for name, value in _client_metrics(record).items():
            mine[name].append(value)
    for name, values in mine.items():
        for p in (50.0, 90.0, 99.0):
            summarised = summary.all.latency_ms.get(name).at(p)
            assert summarised == pytest.approx(float(np.percentile(values, p)), abs=1e-6), (name, p)
    itl = [  # a chunk's gap shared by the tokens it carries
        gap / 1000 / tokens
        for r in steady
        for gap, tokens in zip(np.diff(r.final.chunk_us), r.final.chunk_tokens[1:], strict=True)
        for _ in range(tokens)
    ]
    assert summary.all.latency_ms.get("itl").at(50.0) == pytest.approx(float(np.percentile(itl, 50)), abs=1e-3)
    # 2. the records are true: each request's figures agree with the server's own clock
    by_id = {t["id"]: t for t in trace}
    for name in ("ttft", "tpot", "e2e"):
        gaps = [
            abs(_client_metrics(r)[name] - _server_metrics(by_id[r.final.response_id])[name])
            for r in steady
            if name in _client_metrics(r)
        ]
        assert len(gaps) > 100
        assert float(np.median(gaps)) < MEDIAN_GAP_MS, (name, np.median(gaps))
        assert float(np.percentile(gaps, 90)) < P90_GAP_MS, (name, np.percentile(gaps, 90))
    report = (run_dir / "report.html").read_text()
    assert "<svg" in report and "Complete" in report
    assert 'src="http' not in report and 'href="http' not in report


def test_ctrl_c_mid_run_keeps_records_and_leaves_nothing(tmp_path: Path) -> None:
    path = _scenario(tmp_path, {"name": "long", "users": 4, "duration": "120s"})
    proc = start_finishline("run", str(path), "--no-live")
    try:
        children: dict[int, psutil.Process] = {}

        def sending() -> bool:  # and every process it started so far, noted
            children.update((child.pid, child) for child in descendants(proc.pid))
            assert proc.poll() is None, proc.communicate()
            return _trace_size(tmp_path) > 20_000

        wait_for(sending, timeout=90, what="the run to send traffic (trace lines written)", interval=0.2)
        children.update((child.pid, child) for child in descendants(proc.pid))
        # master, 2 workers, simulator and redis-server at least
        assert len(children) >= 5, [c.cmdline() for c in children.values()]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    wait_gone(list(children.values()))
    run_dir = the_run_dir(tmp_path)
    records = list(read_records(run_dir / "records.jsonl.gz"))
    assert records
    summary = read_summary(run_dir / "summary.json")
    assert summary.partial is True and summary.status == RunStatus.PARTIAL
    assert "interrupted" in (summary.partial_reason or "")
    assert summary.all.count == len([r for r in records if r.phase != "preflight"])
    assert "Partial result" in (run_dir / "report.html").read_text()
    assert os.path.exists(run_dir / "summary.csv")


def test_url_target_key_is_used_but_never_written(tmp_path: Path, simulator: Any) -> None:
    """The key comes from the variable the file names; no file of the run holds it."""
    secret = "sk-finishline-test-" + os.urandom(6).hex()
    with simulator(preset="instant") as sim:
        path = tmp_path / "url.yaml"
        path.write_text(f"""\
name: url-key
target: {{kind: url, base_url: '{sim.base_url}/v1', model: finishline-sim, api_key_env: FL_E2E_KEY}}
workloads:
  - {{name: chat, prompt: {{kind: synthetic, tokens: 32}}, output: 8}}
phases:
  - {{name: s, users: 2, requests: 20}}
workers: 1
output_dir: {tmp_path / "runs"}
""")
        proc = start_finishline("run", str(path), "--no-live", env={**os.environ, "FL_E2E_KEY": secret})
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    run_dir = the_run_dir(tmp_path)
    summary = read_summary(run_dir / "summary.json")
    assert summary.all.count >= 20 and summary.all.errors == 0
    assert secret not in out + err
    for file in run_dir.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            if file.suffix == ".gz":
                data = gzip.decompress(data)
            assert secret.encode() not in data, file


def test_an_unreadable_stream_entry_is_set_aside_and_marks_the_run_partial(tmp_path: Path, redis_server: Any) -> None:
    """Records after a broken entry are still collected; the run says what it could not read."""
    import redis

    path = _scenario(tmp_path, {"name": "steady", "users": 2, "duration": "4s"}, workers=1, redis_url=redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    proc = start_finishline("run", str(path), "--no-live")
    try:
        (key,) = wait_for(
            lambda: client.keys("finishline:*:records"), timeout=60, what="the run's records stream", interval=0.1
        )
        client.xadd(key, {"id": "broken", "r": b"{not json"})
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3 and "Traceback" not in err, err  # partial
    assert "1 unreadable stream entries set aside in rejected.jsonl" in out.strip().splitlines()[-1]  # the outcome
    run_dir = the_run_dir(tmp_path)
    summary = read_summary(run_dir / "summary.json")
    assert summary.partial is True and "rejected.jsonl" in (summary.partial_reason or "")
    records = list(read_records(run_dir / "records.jsonl.gz"))
    assert len(records) == summary.run.records > 0
    assert max(r.end for r in records) > min(r.end for r in records) + 1  # kept collecting after it
    assert b"broken" in (run_dir / "rejected.jsonl").read_bytes()


def test_closed_open_closed_phases_each_run_their_own_role(tmp_path: Path) -> None:
    """The master starts each phase's role and retires the other: closed users, then one open-loop
    dispatcher per worker, then closed users again; the drain at the end loses nothing."""
    path = _scenario(
        tmp_path,
        {"name": "c1", "users": 4, "duration": "3s"},
        {"name": "o", "rate": 20, "duration": "4s"},
        {"name": "c2", "users": 3, "duration": "3s"},
    )
    proc = start_finishline("run", str(path), "--no-live")
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    run_dir = the_run_dir(tmp_path)
    records = [r for r in read_records(run_dir / "records.jsonl.gz") if r.phase != "preflight"]
    by_phase: dict[str, list[Any]] = {}
    for r in records:
        by_phase.setdefault(r.phase, []).append(r)
    assert set(by_phase) == {"c1", "o", "c2"}
    assert all(r.ok for r in records), {r.outcome for r in records}  # nothing cancelled at a change or the end
    assert None not in {r.user_id for r in by_phase["c1"] + by_phase["c2"]}  # closed users only
    assert len({(r.worker, r.user_id) for r in by_phase["c2"]}) == 3
    opened = by_phase["o"]
    assert all(r.user_id is None for r in opened) and len({r.worker for r in opened}) == 2  # a dispatcher each
    assert 50 <= len(opened) <= 100  # 20/s for 4 s, in all: one dispatcher per worker, not more
    summary = read_summary(run_dir / "summary.json")
    assert summary.status == RunStatus.COMPLETE and summary.all.count == len(records)


def test_web_ui_start_as_prefilled_runs_an_open_phase_as_planned_and_stop_cuts_it_short(tmp_path: Path) -> None:
    """``--web``, Start with the form as prefilled: the plan's open phase, one dispatcher per
    worker (no closed user) at the phase's rate; Stop before the phase's end is an interrupted
    run (exit 130), its results written."""
    import json
    import urllib.parse
    import urllib.request

    path = _scenario(tmp_path, {"name": "o", "rate": 10, "duration": "60s"})
    proc = start_finishline("run", str(path), "--web", "--no-live")
    assert proc.stderr is not None  # where the run's messages go
    try:
        url = ""
        deadline = time.monotonic() + 90
        while not url:  # each line as the run writes it (a read that blocks, not a poll)
            assert time.monotonic() < deadline and proc.poll() is None, "no web UI"
            line = proc.stderr.readline()
            if "Locust web UI: " in line:
                url = line.split("Locust web UI: ")[1].strip()
        with urllib.request.urlopen(url, timeout=10) as reply:  # the form's prefilled figures
            page = reply.read().decode()
        prefilled = json.loads(page.split("window.templateArgs = ", 1)[1].split("\n", 1)[0])
        assert prefilled["num_users"] == 2  # the open phase's users: one dispatcher per worker
        form = {"user_count": prefilled["num_users"], "spawn_rate": prefilled["spawn_rate"], "host": ""}
        with urllib.request.urlopen(url + "/swarm", data=urllib.parse.urlencode(form).encode(), timeout=10) as reply:
            assert json.loads(reply.read())["success"]
        started = time.monotonic()
        counts: dict[str, Any] = {}

        def two_dispatchers_running() -> bool:
            nonlocal counts
            with urllib.request.urlopen(url + "/stats/requests", timeout=10) as reply:
                counts = json.loads(reply.read())
            return counts.get("user_count") == 2 and counts.get("state") == "running"

        wait_for(two_dispatchers_running, timeout=20, what=lambda: f"2 users running: {counts}", interval=0.2)
        time.sleep(4)  # the test: four seconds of traffic at the phase's rate
        with urllib.request.urlopen(url + "/stop", data=b"", timeout=10) as reply:
            assert json.loads(reply.read())["success"]
        stopped = time.monotonic()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    run_dir = the_run_dir(tmp_path)
    records = [r for r in read_records(run_dir / "records.jsonl.gz") if r.phase != "preflight"]
    assert records and all(r.user_id is None for r in records)  # dispatchers only
    assert len({r.worker for r in records}) == 2
    assert len(records) <= 10 * (stopped - started + 5) * 1.3  # the phase's rate (and its drain), not more
    assert {r.phase for r in records} == {"o"}
    summary = read_summary(run_dir / "summary.json")
    assert summary.status == RunStatus.PARTIAL and summary.outcome is not None
    assert "stopped from the web UI" in summary.outcome.reasons[0] and (run_dir / "report.html").exists()
