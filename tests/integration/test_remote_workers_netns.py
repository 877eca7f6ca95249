"""Workers on another host: two network namespaces joined by a veth pair stand for two machines.

The coordinator (Locust master, its redis-server and the simulator it starts) runs in host A,
listening on A's address; workers join from host B with ``finishline worker --master A:PORT``,
as they would from another machine. Nothing crosses but the pair, and both namespaces (with
the pair) are removed afterwards (``tests/fixtures/netns.py``).

- two remote workers: every request in the simulator's trace is a record, and ``workers.json``
  says which worker ran where;
- a remote worker whose link goes down mid-run is a lost worker, exactly as a killed local one:
  the run goes on with the local worker, ends partial (exit 3), and counts the loss.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from coordinator.results.collector import read_records
from coordinator.results.outcome import ExitCode
from coordinator.results.summary import read_summary
from coordinator.results.workers import WorkerSource, read_workers
from coordinator.services.ports import free_port
from tests.factories import simulator_scenario, write_scenario
from tests.fixtures.cli import COMMAND, the_run_dir
from tests.fixtures.netns import Host, TwoHosts, two_hosts, unavailable
from tests.fixtures.waiting import wait_for
from tests.paths import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))]


@pytest.fixture
def hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TwoHosts]:
    monkeypatch.setenv("FINISHLINE_STATE_DIR", str(tmp_path / "state"))  # ledgers of this test's runs only
    with two_hosts() as made:
        yield made


@contextlib.contextmanager
def started(host: Host, *args: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``finishline ARGS`` in ``host``'s namespace, its output in ``log``; killed at the end if still running."""
    with log.open("wb") as out:
        proc = subprocess.Popen(host.command([*COMMAND, *args]), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def _scenario(tmp: Path, listen: str, port: int, workers: dict[str, Any], duration: str) -> Path:
    data = simulator_scenario(tmp, [{"name": "steady", "users": 4, "think_time": 0.05, "duration": duration}])
    data["workers"] = {**workers, "listen": listen, "port": port, "wait_s": 60}
    return write_scenario(tmp, data)


def _trace(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "simulator_trace.jsonl").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines if line]


def _trace_lines(tmp: Path) -> int:
    runs = tmp / "runs"
    for run_dir in runs.iterdir() if runs.exists() else []:
        trace = run_dir / "simulator_trace.jsonl"
        if trace.exists():
            return trace.read_bytes().count(b"\n")
    return 0


def test_two_workers_on_another_host_record_every_request(hosts: TwoHosts, tmp_path: Path) -> None:
    port = free_port()
    path = _scenario(tmp_path, hosts.a.address, port, {"remote": 2}, "10s")
    master = f"{hosts.a.address}:{port}"
    with (
        started(hosts.a, "run", str(path), "--no-live", log=tmp_path / "run.log") as run,
        started(hosts.b, "worker", "--master", master, log=tmp_path / "worker-1.log") as one,
        started(hosts.b, "worker", "--master", master, log=tmp_path / "worker-2.log") as two,
    ):
        assert run.wait(timeout=180) == 0, (tmp_path / "run.log").read_text()[-3000:]
        for worker in (one, two):  # each leaves when the master quits
            assert worker.wait(timeout=30) == 0, (tmp_path / "worker-1.log").read_text()[-2000:]
    run_dir = the_run_dir(tmp_path)
    records = list(read_records(run_dir / "records.jsonl.gz"))
    trace = _trace(run_dir)
    assert len(records) == len(trace) > 50
    assert sorted(r.final.response_id or "" for r in records) == sorted(t["id"] for t in trace)
    assert all(r.ok for r in records)
    placed = read_workers(run_dir)
    assert sorted(w.pid for w in placed) == sorted([one.pid, two.pid])  # ip netns exec execs: the same pid
    assert {w.source for w in placed} == {WorkerSource.REMOTE}
    assert {r.worker for r in records if r.phase == "steady"} == {w.name for w in placed}
    report = (run_dir / "report.html").read_text()
    for w in placed:
        assert w.name in report


def test_a_remote_worker_whose_link_goes_down_is_a_lost_worker(hosts: TwoHosts, tmp_path: Path) -> None:
    port = free_port()
    path = _scenario(tmp_path, hosts.a.address, port, {"local": 1, "remote": 1}, "25s")
    with (
        started(hosts.a, "run", str(path), "--no-live", log=tmp_path / "run.log") as run,
        started(hosts.b, "worker", "--master", f"{hosts.a.address}:{port}", log=tmp_path / "worker.log") as remote,
    ):
        wait_for(lambda: _trace_lines(tmp_path) > 40, timeout=120, what="both workers sending", interval=0.2)
        hosts.b.link_down()
        code = run.wait(timeout=180)
        log = (tmp_path / "run.log").read_text()
        assert code == ExitCode.PARTIAL, log[-3000:]
        assert remote.poll() is None  # it still runs, cut off: the run did not wait for it
    run_dir = the_run_dir(tmp_path)
    summary = read_summary(run_dir / "summary.json")
    assert summary.losses is not None
    (lost,) = summary.losses.workers_lost
    placed = {w.name: w for w in read_workers(run_dir)}
    assert placed[lost.worker].source is WorkerSource.REMOTE and placed[lost.worker].pid == remote.pid
    assert placed[lost.worker].lost_at is not None
    assert lost.exit_code is None  # not a process of ours: no exit code to tell
    assert "lost" in log and lost.worker in log
    # the local worker went on after the loss: records from after it, and the run reached its end
    records = list(read_records(run_dir / "records.jsonl.gz"))
    local = [r for r in records if r.worker != lost.worker and r.phase == "steady"]
    assert max(r.end for r in local) - min(r.scheduled for r in local) > 20
