"""Trust under faults, from real runs (real Locust, redis-server, simulator): each exit code, and a
worker, redis-server and the coordinator killed mid-run, checked against the simulator's trace.

For every kill: nothing is lost that is not counted (the trace's requests without a record are
exactly the reported lost ones), nothing is left running, and no secret is in any file of the
run directory or of finishline's temporary folders.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from coordinator.results.summary import Summary, read_summary
from tests.fixtures.cli import descendants, running_finishline, start_finishline, still_running, the_run_dir, wait_gone
from tests.fixtures.simulator import SimulatorHandle, run_simulator
from tests.fixtures.waiting import wait_for

SECRET = "s3cr3t-header-value-7f1c"
WORKLOAD = """\
workloads:
  - name: chat
    prompt: {kind: synthetic, tokens: 40}
    output: {kind: uniform, min: 8, max: 24}
"""


def _write(tmp: Path, target: str, phases: str, extra: str = "", workers: int = 2) -> Path:
    path = tmp / "scenario.yaml"
    path.write_text(
        f"name: faults\ntarget: {target}\n{WORKLOAD}phases:\n{phases}\nworkers: {workers}\n"
        f"output_dir: {tmp / 'runs'}\ndrain_timeout: 10\n{extra}"
    )
    return path


def _finish(proc: subprocess.Popen[str], timeout: float = 180) -> tuple[int, str]:
    """The exit code, and stderr then stdout: the last line is the console's last (the outcome)."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, err + out


def _records(run_dir: Path) -> list[dict[str, Any]]:
    with gzip.open(run_dir / "records.jsonl.gz", "rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]


def _trace(run_dir: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (run_dir / "simulator_trace.jsonl").read_bytes().splitlines() if line]


def _missing(run_dir: Path, trace: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Requests of the simulator's ``trace`` that have no record."""
    seen = {r["attempts"][-1]["response_id"] for r in _records(run_dir) if r["attempts"]}
    return [t for t in trace if t["id"] not in seen]


def _workers(pid: int) -> list[psutil.Process]:
    return [c for c in descendants(pid) if "--worker" in " ".join(c.cmdline())]


def _traffic(sim: SimulatorHandle) -> None:
    """Until the simulator has answered 30 requests: the run is under way."""
    wait_for(lambda: len(sim.read_trace()) >= 30, timeout=60, what="traffic", interval=0.1)


def _records_so_far(tmp: Path, at_least: int) -> bool:
    runs = tmp / "runs"
    dirs = list(runs.iterdir()) if runs.exists() else []
    if not dirs or not (dirs[0] / "simulator_trace.jsonl").exists():
        return False
    return len((dirs[0] / "simulator_trace.jsonl").read_bytes().splitlines()) >= at_least


def _alive(processes: list[psutil.Process]) -> list[str]:
    """The command lines (their start) of those of ``processes`` still running."""
    out = []
    for p in still_running(processes):
        try:
            out.append(" ".join(p.cmdline()[:4]))
        except psutil.NoSuchProcess:
            continue
    return out


def _no_secret(run_dir: Path) -> None:
    """The header's value is in no file of the run directory or of finishline's temporary folders."""
    roots = [run_dir, *Path(tempfile.gettempdir()).glob("finishline-*")]
    for root in roots:
        for file in [root] if root.is_file() else root.rglob("*"):
            if not file.is_file():
                continue
            data = file.read_bytes()
            if file.suffix == ".gz":
                data = gzip.decompress(data)
            assert SECRET.encode() not in data, file


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Ledgers of this test's runs only (the child processes inherit the variable)."""
    path = tmp_path / "state"
    monkeypatch.setenv("FINISHLINE_STATE_DIR", str(path))
    yield path


def _summary(run_dir: Path) -> Summary:
    return read_summary(run_dir / "summary.json")


# -- exit codes ------------------------------------------------------------------------------------


def test_a_dead_target_is_one_line_and_exit_2_and_without_preflight_ends_early_with_exit_6(
    tmp_path: Path, state_dir: Path
) -> None:
    port = _free_closed_port()
    code, out = _finish(
        start_finishline(
            "run",
            str(
                _write(
                    tmp_path,
                    f'{{kind: url, base_url: "http://127.0.0.1:{port}/v1", model: m}}',
                    "  - {name: p, users: 4, duration: 60s}",
                )
            ),
        )
    )
    assert code == 2, out
    assert f"connection refused at 127.0.0.1:{port}" in out and "Traceback" not in out

    tmp = tmp_path / "no-preflight"
    tmp.mkdir()
    target = f'{{kind: url, base_url: "http://127.0.0.1:{port}/v1", model: m, preflight: false}}'
    started = time.monotonic()
    code, out = _finish(
        start_finishline(
            "run",
            str(_write(tmp, target, "  - {name: p, users: 4, duration: 60s}", "checks: {abort_when_down_s: 3}\n")),
        )
    )
    assert code == 6, out
    assert time.monotonic() - started < 40  # ended early, not after the phase's 60 s
    summary = _summary(the_run_dir(tmp))
    assert summary.outcome is not None and summary.outcome.exit_code == 6
    assert "target down" in out.strip().splitlines()[-1]
    # closed users back off: a few dozen attempts, not thousands a second
    assert summary.all.count < 400, summary.all.count


def _free_closed_port() -> int:
    from coordinator.services.ports import free_port

    return free_port()


def test_a_web_page_and_a_base_url_without_v1_are_refused_before_any_load(tmp_path: Path, state_dir: Path) -> None:
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>hello</body></html>")

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        code, out = _finish(
            start_finishline(
                "run",
                str(
                    _write(
                        tmp_path,
                        f'{{kind: url, base_url: "{url}", model: m}}',
                        "  - {name: p, users: 1, duration: 5s}",
                    )
                ),
            )
        )
    finally:
        server.shutdown()
    assert code == 2 and "got text/html" in out and "Traceback" not in out, out

    with run_simulator() as sim:
        tmp = tmp_path / "no-v1"
        tmp.mkdir()
        code, out = _finish(
            start_finishline(
                "run",
                str(
                    _write(
                        tmp,
                        f'{{kind: url, base_url: "{sim.base_url}", model: finishline-sim}}',
                        "  - {name: p, users: 1, duration: 5s}",
                    )
                ),
            )
        )
    assert code == 2 and "should end in /v1" in out, out


def test_an_invalid_self_check_and_a_missed_enforced_slo_have_their_own_codes(tmp_path: Path, state_dir: Path) -> None:
    phases = "  - {name: p, users: 2, duration: 4s}"
    code, out = _finish(
        start_finishline(
            "run",
            str(_write(tmp_path, "{kind: simulator}", phases, "selfcheck: {cpu_percent: 0.01, min_samples: 1}\n")),
        )
    )
    assert code == 4, out
    assert out.strip().splitlines()[-1].startswith("finishline: INVALID:")
    summary = _summary(the_run_dir(tmp_path))
    assert summary.outcome is not None and summary.outcome.exit_code == 4 and not summary.valid
    report = (the_run_dir(tmp_path) / "report.html").read_text()
    assert "INVALID" in report and "exit code 4" in report

    tmp = tmp_path / "slo"
    tmp.mkdir()
    code, out = _finish(
        start_finishline("run", str(_write(tmp, "{kind: simulator}", phases, "slo: {ttft_ms: 0.001, enforce: true}\n")))
    )
    assert code == 5, out
    summary = _summary(the_run_dir(tmp))
    assert summary.outcome is not None and summary.outcome.slo_met is False
    assert summary.all.slo is not None and summary.all.slo.checks["ttft"].met is False

    tmp = tmp_path / "slo-reported"
    tmp.mkdir()
    code, out = _finish(
        start_finishline("run", str(_write(tmp, "{kind: simulator}", phases, "slo: {ttft_ms: 0.001}\n")))
    )
    assert code == 0, out  # missed, but not enforced: reported only
    assert _summary(the_run_dir(tmp)).outcome.slo_met is False  # type: ignore[union-attr]


def test_a_bad_dataset_line_is_exit_2_before_anything_starts(tmp_path: Path, state_dir: Path) -> None:
    data = tmp_path / "prompts.jsonl"
    lines = [orjson.dumps({"messages": [{"role": "user", "content": f"hi {i}"}]}).decode() for i in range(49)]
    data.write_text("\n".join([*lines, "{not json"]) + "\n")
    path = tmp_path / "scenario.yaml"
    path.write_text(
        "name: data\ntarget: {kind: simulator}\nworkloads:\n  - name: w\n    prompt: {kind: jsonl, path: prompts.jsonl}\n"
        f"phases:\n  - {{name: p, users: 1, duration: 5s}}\noutput_dir: {tmp_path / 'runs'}\n"
    )
    for command in ("validate", "run"):
        code, out = _finish(start_finishline(command, str(path)))
        assert code == 2, out
        assert "line 50 is not valid JSON" in out and "Traceback" not in out
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_a_full_disk_is_one_line_naming_the_path_exit_3_and_no_complete_summary(
    tmp_path: Path, state_dir: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)], check=True)
    try:
        path = _write(tmp_path, "{kind: simulator, trace: false}", "  - {name: p, users: 8, duration: 30s}")
        path.write_text(path.read_text().replace(f"output_dir: {tmp_path / 'runs'}", f"output_dir: {mount}"))
        code, out = _finish(start_finishline("run", str(path)))
        assert code == 3, out
        last = out.strip().splitlines()[-1]
        assert "No space left on device" in last and str(mount) in last, last
        assert "Traceback" not in out
        for run_dir in mount.iterdir():
            assert not list(run_dir.glob(".*.tmp")), "a temporary file was left behind"
            if (run_dir / "summary.json").exists():
                summary = _summary(run_dir)
                assert summary.status != "complete" and summary.outcome is not None and summary.outcome.exit_code == 3
    finally:
        subprocess.run(["umount", str(mount)], check=False)


# -- kills -----------------------------------------------------------------------------------------


def _secret_target(sim_url: str) -> str:
    return f'{{kind: url, base_url: "{sim_url}/v1", model: finishline-sim, headers: {{X-Secret: {SECRET}}}}}'


@contextlib.contextmanager
def _run_under_way(
    tmp: Path, users: int, duration: str, start_new_session: bool = False
) -> Iterator[tuple[SimulatorHandle, subprocess.Popen[str]]]:
    """``finishline run`` of one phase against a simulator of this process (its trace is the truth,
    and it outlives the run), every request carrying the secret header; yielded once traffic flows."""
    with run_simulator(preset="gpu-8b") as sim:
        path = _write(tmp, _secret_target(sim.base_url), f"  - {{name: p, users: {users}, duration: {duration}}}")
        with running_finishline("run", str(path), "--no-live", start_new_session=start_new_session) as proc:
            _traffic(sim)
            yield sim, proc


def test_killing_one_of_three_workers_goes_on_and_counts_exactly_what_was_lost(tmp_path: Path, state_dir: Path) -> None:
    path = _write(tmp_path, "{kind: simulator}", "  - {name: p, users: 6, duration: 16s}", workers=3)
    with running_finishline("run", str(path), "--no-live") as proc:
        workers = wait_for(
            lambda: w if len(w := _workers(proc.pid)) == 3 else None, timeout=60, what="three workers", interval=0.1
        )
        wait_for(lambda: _records_so_far(tmp_path, 40), timeout=60, what="traffic", interval=0.1)
        children = descendants(proc.pid)
        victim = workers[0]
        victim.kill()
        killed_at = time.monotonic()
        code, out = _finish(proc)
    assert code == 3, out
    assert "Traceback" not in out
    run_dir = the_run_dir(tmp_path)
    summary = _summary(run_dir)
    assert summary.losses is not None
    (lost,) = summary.losses.workers_lost
    assert lost.worker.endswith(f":{victim.pid}") and lost.exit_code == -signal.SIGKILL
    assert lost.users and lost.short_for_s is not None and lost.short_for_s < 15
    missing = _missing(run_dir, _trace(run_dir))
    assert len(missing) == summary.losses.records_lost == summary.losses.by_worker.get(lost.worker, 0)
    # what was lost is what the dead worker had not flushed: within its last flush interval (100 ms)
    assert all(t["finish"] >= killed_at - 0.1 - 0.05 for t in missing), [killed_at - t["finish"] for t in missing]
    # the others went on: traffic after the loss
    assert max(r["end"] for r in _records(run_dir)) > killed_at + 3
    wait_gone(children)


def test_a_worker_killed_in_a_requests_phase_ends_the_phase_when_the_others_spent_their_shares(
    tmp_path: Path, state_dir: Path
) -> None:
    # Each worker sends its share of 300 requests; the dead one's share is never sent, so the phase
    # ends when the two left have spent theirs and nothing is in flight, not at a count never reached.
    path = _write(tmp_path, "{kind: simulator}", "  - {name: p, users: 6, requests: 300}", workers=3)
    with running_finishline("run", str(path), "--no-live") as proc:
        workers = wait_for(
            lambda: w if len(w := _workers(proc.pid)) == 3 else None, timeout=60, what="three workers", interval=0.1
        )
        wait_for(lambda: _records_so_far(tmp_path, 20), timeout=60, what="traffic", interval=0.1)
        workers[0].kill()
        code, out = _finish(proc, timeout=120)
    assert code == 3, out
    summary = _summary(run_dir := the_run_dir(tmp_path))
    assert summary.losses is not None
    sent = summary.phases["p"].count
    assert 200 <= sent < 300  # the two shares of 100, and what the dead worker sent before
    assert len(_trace(run_dir)) - summary.phases["preflight"].count <= sent + summary.losses.records_lost


def test_killing_redis_is_said_at_once_and_what_workers_could_not_send_is_counted(
    tmp_path: Path, state_dir: Path
) -> None:
    with _run_under_way(tmp_path, 4, "60s") as (sim, proc):
        children = descendants(proc.pid)
        (redis_server,) = [c for c in children if "redis-server" in c.name()]
        redis_server.kill()
        killed_at = time.monotonic()
        code, out = _finish(proc, timeout=90)
        took = time.monotonic() - killed_at
        trace = sim.read_trace()
    assert code == 3, out
    assert took < 20, took  # told within seconds, not after a hang
    assert "redis-server exited (killed by SIGKILL)" in out and "Traceback" not in out
    run_dir = the_run_dir(tmp_path)
    summary = _summary(run_dir)
    missing = _missing(run_dir, trace)
    assert summary.losses is not None
    # every request the server saw without a record is counted; the count may also hold requests
    # stopped before they were sent (their cancelled records could not reach Redis either)
    assert 0 < len(missing) <= summary.losses.records_lost <= len(missing) + 4  # 4 users
    wait_gone(children)
    _no_secret(run_dir)


def test_an_external_redis_restarting_mid_run_is_waited_out_and_what_it_lost_is_counted(
    tmp_path: Path, state_dir: Path
) -> None:
    """A Redis the run does not own (``redis_url``) goes away for two seconds and comes back empty:
    the collector waits, the workers' sinks send what they held, and what the old Redis took with
    it is counted from the workers' own accounts."""
    from coordinator.services.redis_server import RedisServer

    first = RedisServer().start()
    port = first.port
    second: RedisServer | None = None
    try:
        with run_simulator(preset="gpu-8b") as sim:
            path = _write(
                tmp_path,
                "{kind: url, base_url: '" + sim.base_url + "/v1', model: finishline-sim}",
                "  - {name: p, users: 4, duration: 14s}",
                f"redis_url: {first.url}\n",
            )
            with running_finishline("run", str(path), "--no-live") as proc:
                _traffic(sim)
                first.stop()
                time.sleep(2.0)  # the test: Redis away for two seconds
                second = RedisServer(port=port).start()
                code, out = _finish(proc, timeout=120)
            trace = sim.read_trace()
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert code in (0, 3), out  # 3 when the old Redis held records nobody had collected yet
    assert "Traceback" not in out
    run_dir = the_run_dir(tmp_path)
    summary = _summary(run_dir)
    missing = _missing(run_dir, trace)
    lost = summary.losses.records_lost if summary.losses is not None else 0
    assert len(missing) <= lost <= len(missing) + 4, (len(missing), lost)  # nothing lost uncounted
    assert (code == 3) == (lost > 0)
    assert max(r["end"] for r in _records(run_dir)) > min(r["end"] for r in _records(run_dir)) + 8  # went on


def test_two_quick_ctrl_c_to_the_process_group_stop_fast_and_lose_nothing(tmp_path: Path, state_dir: Path) -> None:
    # the run in its own process group, as a terminal's job: Ctrl-C reaches all of it
    with _run_under_way(tmp_path, 6, "120s", start_new_session=True) as (sim, proc):
        children = descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)  # the test: a second Ctrl-C 0.3 s after the first
        os.killpg(proc.pid, signal.SIGINT)
        stopped = time.monotonic()
        code, out = _finish(proc, timeout=60)
        took = time.monotonic() - stopped
        trace = sim.read_trace()
    assert code == 130, out
    assert took < 15, took
    assert "Traceback" not in out and "ConnectionError" not in out
    run_dir = the_run_dir(tmp_path)
    assert _missing(run_dir, trace) == []  # nothing lost
    assert _summary(run_dir).outcome.exit_code == 130  # type: ignore[union-attr]
    wait_gone(children)
    _no_secret(run_dir)


def test_killing_the_coordinator_then_recover_writes_every_answered_request_and_clean_leaves_nothing(
    tmp_path: Path, state_dir: Path
) -> None:
    with _run_under_way(tmp_path, 4, "120s") as (sim, proc):
        wait_for(lambda: list(state_dir.glob("*.json")), timeout=60, what="the ledger", interval=0.1)
        children = descendants(proc.pid)
        proc.kill()
        proc.communicate(timeout=30)
        left = wait_for(lambda: _orphans_settled(children), timeout=60, what="Locust to stop", interval=0.1)
        assert any("redis-server" in name for name in left), left  # the run's redis-server is orphaned, still up
        run_dir = the_run_dir(tmp_path)
        assert not (run_dir / "summary.json").exists()
        code, out = _finish(start_finishline("recover", str(run_dir)))
        assert code == 3, out
        assert "recovered" in out
        summary = _summary(run_dir)
        assert summary.status == "recovered"
        trace = sim.read_trace()
        answered = {t["id"] for t in trace if t["outcome"] == "ok"}
        recorded_ok = {
            r["attempts"][-1]["response_id"]
            for r in _records(run_dir)
            if r["attempts"] and not r["attempts"][-1]["error"]
        }
        assert answered == recorded_ok
        assert summary.all.ok + summary.phases["preflight"].ok == len(answered)
        code, out = _finish(start_finishline("clean"))
        assert code == 0, out
        wait_gone(children)
        assert not list(Path(tempfile.gettempdir()).glob(f"finishline-*-{proc.pid}-*"))
        _no_secret(run_dir)


def _orphans_settled(children: list[psutil.Process]) -> list[str] | None:
    """Once the master and workers have gone (they stop when the coordinator does), what is left
    running (the run's redis-server and simulator: their owner is gone, they are not)."""
    left = _alive(children)
    if any("locust" in name or "coordinator.run.master" in name for name in left):
        return None
    return left or None
