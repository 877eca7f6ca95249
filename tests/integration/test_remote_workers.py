"""Workers that join a run from outside it (``finishline worker --master HOST:PORT``), on loopback:
real runs, a real ``finishline worker`` process, the simulator's trace as the truth.

- one local and one remote worker: every request the simulator answered is a record, and
  ``workers.json`` names both, each with its source;
- a worker of another finishline version: the master refuses it with why, the worker says so in
  one line and exits non-zero, and the run that waited for it fails in one line;
- expected workers that never join: one line naming how many did, exit 3, nothing left running.
"""

from __future__ import annotations

import gzip
import os
import re
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import gevent
import orjson
import pytest
from locust import __version__ as locust_version
from locust.env import Environment
from locust.event import Events
from locust.rpc import Message, zmqrpc

from coordinator.results.summary import read_summary
from coordinator.results.workers import WorkerSource, read_workers
from coordinator.services.ports import free_port
from loadgen.config import (
    HELLO_MESSAGE,
    REFUSED_MESSAGE,
    WorkerHello,
    WorkerRefused,
    finishline_version,
)
from loadgen.users import USER_CLASSES, PhaseUsersDispatcher
from tests.factories import simulator_scenario, write_scenario
from tests.fixtures.cli import descendants, start_finishline, the_run_dir, wait_gone
from tests.fixtures.waiting import wait_for


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Ledgers of this test's runs only (the child processes inherit the variable)."""
    path = tmp_path / "state"
    monkeypatch.setenv("FINISHLINE_STATE_DIR", str(path))
    yield path


def _scenario(tmp: Path, workers: dict[str, Any], phases: list[dict[str, Any]] | None = None) -> Path:
    phases = phases or [{"name": "steady", "users": 4, "duration": "6s"}]
    return write_scenario(tmp, simulator_scenario(tmp, phases, workers=workers, drain_timeout=10))


def _records(run_dir: Path) -> list[dict[str, Any]]:
    with gzip.open(run_dir / "records.jsonl.gz", "rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]


def _answered(tmp: Path) -> int:
    """Requests the run's simulator has answered so far (lines of its trace)."""
    return sum(len(trace.read_bytes().splitlines()) for trace in (tmp / "runs").glob("*/simulator_trace.jsonl"))


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


class _Output:
    """A process's stdout and stderr, read as they come (a pipe nobody reads would block it)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._read, args=(stream, into), daemon=True)
            for stream, into in ((proc.stdout, self.out), (proc.stderr, self.err))
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _read(stream: IO[str] | None, into: list[str]) -> None:
        assert stream is not None
        for line in stream:
            into.append(line)

    def waiting_line(self) -> str:
        """The run's line that says what to start."""

        def found() -> str | None:
            assert self.proc.poll() is None, self.text()
            return next((line.strip() for line in list(self.err) if "finishline worker --master" in line), None)

        return wait_for(found, timeout=60, what="the run to say what to start", interval=0.05)

    def finish(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=10)
        return code

    def text(self) -> str:
        return "".join(self.err) + "".join(self.out)


@pytest.mark.parametrize("listen", ["127.0.0.1", "127.0.0.2"])  # .2: every service bound where `listen` says
def test_a_local_and_a_remote_worker_record_every_request_and_workers_json_names_both(
    tmp_path: Path, state_dir: Path, listen: str
) -> None:
    port = free_port(listen)
    path = _scenario(tmp_path, {"local": 1, "remote": 1, "wait_s": 60, "port": port, "listen": listen})
    run = start_finishline("run", str(path), "--no-live")
    output = _Output(run)
    remote: subprocess.Popen[str] | None = None
    try:
        line = output.waiting_line()
        assert line == f"finishline: waiting up to 60 s for 1 remote worker: finishline worker --master {listen}:{port}"
        remote = start_finishline("worker", "--master", f"{listen}:{port}")
        assert output.finish(timeout=180) == 0, output.text()
        _, remote_err = remote.communicate(timeout=30)  # the master's quit ends it
        assert remote.returncode == 0, remote_err
    finally:
        for proc in (run, remote):
            if proc is not None and proc.poll() is None:
                proc.kill()
    run_dir = the_run_dir(tmp_path)
    records = _records(run_dir)
    trace = [orjson.loads(x) for x in (run_dir / "simulator_trace.jsonl").read_bytes().splitlines() if x]
    seen = {r["attempts"][-1]["response_id"] for r in records if r["attempts"]}
    assert trace and {t["id"] for t in trace} <= seen  # every request the simulator answered is a record
    workers = {w.source: w for w in read_workers(run_dir)}
    assert set(workers) == {WorkerSource.LOCAL, WorkerSource.REMOTE}
    assert workers[WorkerSource.REMOTE].pid == remote.pid  # `finishline worker` became the worker (exec)
    assert all(w.version == finishline_version() and w.lost_at is None for w in workers.values())
    names = {w.name for w in workers.values()}
    assert names <= {r["worker"] for r in records}  # both sent traffic
    assert sum(w.records or 0 for w in workers.values()) == sum(r["worker"] in names for r in records)
    base_url = orjson.loads((run_dir / "target.json").read_bytes())["base_url"]
    assert base_url.startswith(f"http://{listen}:")  # the simulator listens where the workers were told
    report = (run_dir / "report.html").read_text()
    assert "id='workers'" in report and workers[WorkerSource.REMOTE].name in report
    _no_redis_password(run_dir)


def _no_redis_password(run_dir: Path) -> None:
    """The password of the run's Redis (it listens for remote workers) is in no file of the run directory."""
    for file in run_dir.rglob("*"):
        if file.is_file():
            data = gzip.decompress(file.read_bytes()) if file.suffix == ".gz" else file.read_bytes()
            assert re.search(rb"redis://[^/@\s]*:[^*/@\s]+@", data) is None, file
    ledger = orjson.loads((run_dir / "owned.json").read_bytes())
    assert ":***@" in ledger["redis_url"]  # it had one, and the ledger says so without it


def _client_of_another_version(port: int, version: str) -> str:
    """Join the master as a Locust worker would, say hello as finishline ``version``; the reason it refuses."""
    client_id = f"{socket.gethostname()}_{uuid.uuid4().hex}"
    client = zmqrpc.Client("127.0.0.1", port, client_id)
    try:
        client.send(Message("client_ready", locust_version, client_id))
        hello = WorkerHello(name="elsewhere:1", host="elsewhere", pid=1, version=version, python="3.11.0")
        client.send(Message(HELLO_MESSAGE, hello.model_dump(), client_id))
        with gevent.Timeout(30):
            while True:
                msg = client.recv()
                if msg.type == REFUSED_MESSAGE:
                    return WorkerRefused.model_validate(msg.data).reason
    finally:
        client.close(linger=0)


def test_a_worker_of_another_version_is_refused_and_the_run_says_who_in_one_line(
    tmp_path: Path, state_dir: Path
) -> None:
    port = free_port()
    path = _scenario(tmp_path, {"local": 1, "remote": 1, "wait_s": 6, "port": port})
    run = start_finishline("run", str(path), "--no-live")
    output = _Output(run)
    try:
        output.waiting_line()
        reason = _client_of_another_version(port, "0.0.0-other")
        assert reason == f"it runs finishline {finishline_version()}, this worker 0.0.0-other; install the same version"
        code = output.finish(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    out = output.text()
    assert code == 3, out
    failure = [line for line in _lines(out) if "workers joined" in line]
    assert len(failure) == 1 and "only 1 of 2 workers joined within 6 s; 1 refused: elsewhere:1: it runs" in failure[0]
    assert "Traceback" not in out


def test_a_refused_worker_says_why_in_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    """The worker's side: a master (in this process) that refuses whoever says hello."""
    env = Environment(user_classes=list(USER_CLASSES), events=Events(), dispatcher_class=PhaseUsersDispatcher)
    port = free_port()
    master = env.create_master_runner(master_bind_host="127.0.0.1", master_bind_port=port)
    refusal = WorkerRefused(reason="it runs finishline 9.9.9, this worker 0.1.0; install the same version")
    master.register_message(
        HELLO_MESSAGE,
        lambda msg, **_: master.send_message(REFUSED_MESSAGE, refusal.model_dump(), client_id=msg.node_id),
    )
    try:
        worker = start_finishline("worker", "--master", f"127.0.0.1:{port}", env=dict(os.environ))
        wait_for(lambda: worker.poll() is not None, timeout=60, what="the refused worker to exit", interval=0.1)
        out, err = worker.communicate(timeout=10)
    finally:
        master.quit()
    assert worker.returncode not in (0, None)
    assert _lines(err) == [  # what it waits for, then why it leaves
        f"finishline worker: joining the run whose master is at 127.0.0.1:{port} (waiting for it) ...",
        f"finishline worker: refused by the master: {refusal.reason}",
    ], err
    assert not out.strip()


def test_expected_workers_that_never_join_fail_the_run_in_one_line_and_leave_nothing(
    tmp_path: Path, state_dir: Path
) -> None:
    port = free_port()
    path = _scenario(tmp_path, {"local": 1, "remote": 2, "wait_s": 3, "port": port})
    run = start_finishline("run", str(path), "--no-live")
    output = _Output(run)
    try:
        output.waiting_line()
        children = descendants(run.pid)
        code = output.finish(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    text = output.text()
    assert code == 3, text
    failure = [line for line in _lines(text) if "workers joined" in line]
    assert len(failure) == 1 and "only 1 of 3 workers joined within 3 s" in failure[0], text
    assert "Traceback" not in text
    wait_gone(children)


def test_a_remote_worker_killed_mid_run_is_one_loss_and_the_run_goes_on(tmp_path: Path, state_dir: Path) -> None:
    port = free_port()
    phases = [{"name": "steady", "users": 4, "duration": "14s"}]
    path = _scenario(tmp_path, {"local": 1, "remote": 1, "wait_s": 60, "port": port}, phases)
    run = start_finishline("run", str(path), "--no-live")
    output = _Output(run)
    remote: subprocess.Popen[str] | None = None
    try:
        output.waiting_line()
        remote = start_finishline("worker", "--master", f"127.0.0.1:{port}")
        wait_for(lambda: _answered(tmp_path) >= 30, timeout=60, what="traffic", interval=0.1)
        remote.kill()  # as its host going away: no goodbye, the master notices the silence
        code = output.finish(timeout=180)
    finally:
        for proc in (run, remote):
            if proc is not None and proc.poll() is None:
                proc.kill()
    text = output.text()
    assert code == 3, text
    run_dir = the_run_dir(tmp_path)
    summary = read_summary(run_dir / "summary.json")
    assert summary.losses is not None
    (lost,) = summary.losses.workers_lost  # once, though the master saw it go missing and quit
    assert remote is not None and lost.worker.endswith(f":{remote.pid}") and lost.exit_code is None
    workers = {w.source: w for w in read_workers(run_dir)}
    assert workers[WorkerSource.REMOTE].lost_at is not None and workers[WorkerSource.LOCAL].lost_at is None
    records = _records(run_dir)
    killed = max(r["end"] for r in records if r["worker"] == lost.worker)
    assert max(r["end"] for r in records) > killed + 3  # the local worker went on
    trace_rows = [orjson.loads(x) for x in (run_dir / "simulator_trace.jsonl").read_bytes().splitlines() if x]
    seen = {r["attempts"][-1]["response_id"] for r in records if r["attempts"]}
    assert len([t for t in trace_rows if t["id"] not in seen]) == summary.losses.records_lost
    assert sum("went missing" in line for line in _lines(text)) == 1, text
