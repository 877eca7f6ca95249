"""The Locust master and workers as local processes, started and always stopped by the run.

Children run in their own session so a Ctrl-C in the terminal reaches only the coordinator,
which then stops them in order (users stopped, sinks flushed, processes gone) instead of
every process dying at once and losing what was in flight.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from coordinator.plan.steps import LocustStep
from coordinator.services.ports import free_port
from coordinator.services.process import stop_process
from loadgen.config import CONFIG_ENV, WorkerProgress
from loadgen.errors import ServiceError


class ClusterError(ServiceError):
    """The master or a worker failed; the message says which and why."""


@dataclass
class WorkerLoss:
    """A worker that went away mid-run: the run goes on with the others (Locust rebalances users)."""

    worker: str  # the worker's name on its records and samples (host:pid)
    lost_at: float  # monotonic s: when the coordinator saw it gone
    exit_code: int | None  # None: a remote worker whose process is not ours
    users: int | None = None  # the users it ran (its last sample)
    rebalanced_at: float | None = None  # monotonic s: the master had the other workers run every user again
    records_lost: int | None = None  # filled in when the run ends: begun minus received


def locustfile_path() -> str:
    spec = importlib.util.find_spec("loadgen.locustfile")
    if spec is None or spec.origin is None:
        raise ClusterError("loadgen.locustfile is missing from this installation")
    return spec.origin


class LocustCluster:
    """One master (driven over pipes, see ``coordinator.run.master``) and N worker processes."""

    def __init__(
        self,
        run_dir: Path,
        worker_config: str,
        workers: int,
        env: dict[str, str],
        web_port: int | None = None,
        first_users: int = 1,
        stop_timeout: float = 0.0,
        host: str = "",
    ) -> None:
        self.run_dir = run_dir
        self.host = host  # the target's base URL: what Locust's UI shows as the host under test
        self.workers = workers
        # The configuration travels in the workers' environment, never in a file: a target header
        # may hold a secret, and a file would outlive a killed run.
        self.env = {**env, CONFIG_ENV: worker_config, "PYTHONUNBUFFERED": "1"}
        self.web_port = web_port
        self.first_users = first_users
        self.stop_timeout = stop_timeout
        self.master_port = free_port()
        self.master: subprocess.Popen[bytes] | None = None
        self.worker_procs: list[subprocess.Popen[bytes]] = []
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.lost: list[WorkerLoss] = []  # workers gone mid-run, oldest first
        self._quitting = False
        self._host = socket.gethostname()
        self._logs: list[IO[bytes]] = []
        self._reader: threading.Thread | None = None

    # -- start -----------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        locustfile = locustfile_path()
        spec = {
            "locustfile": locustfile,
            "master_port": self.master_port,
            "workers": self.workers,
            "web_port": self.web_port,
            "first_users": self.first_users,
            "worker_timeout": timeout,
            "stop_timeout": self.stop_timeout,
            "host": self.host,
        }
        spec_path = self.run_dir / "master.json"
        spec_path.write_text(json.dumps(spec))
        master_log = self._log("master.log")
        self.master = subprocess.Popen(
            [sys.executable, "-m", "coordinator.run.master", str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=master_log,
            env=self.env,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_master, name="finishline-master-reader", daemon=True)
        self._reader.start()
        self.expect("listening", timeout=timeout)
        for i in range(self.workers):
            log = self._log(f"worker-{i + 1}.log")
            self.worker_procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "locust",
                        "-f",
                        locustfile,
                        "--worker",
                        "--master-host",
                        "127.0.0.1",
                        "--master-port",
                        str(self.master_port),
                        "--loglevel",
                        "WARNING",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                )
            )
        self.expect("workers_ready", timeout=timeout)

    def _log(self, name: str) -> IO[bytes]:
        fh = (self.run_dir / "logs").joinpath(name)
        fh.parent.mkdir(exist_ok=True)
        handle = fh.open("wb")
        self._logs.append(handle)
        return handle

    def _read_master(self) -> None:
        assert self.master is not None and self.master.stdout is not None
        for raw in self.master.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if msg.get("event") == "rebalanced":  # unsolicited: a loss's users run again on the others
                for loss in self.lost:
                    if loss.rebalanced_at is None and loss.lost_at <= float(msg["t"]) + 5.0:
                        loss.rebalanced_at = float(msg["t"])
                continue
            self._events.put(msg)
        self._events.put({"event": "exited"})

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """Wait for the master's next ``event``; a failure or exit becomes a ``ClusterError``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClusterError(f"the Locust master did not report {event!r} within {timeout:.0f} s{self._tail()}")
            try:
                msg = self._events.get(timeout=min(left, 0.5))
            except queue.Empty:
                self._check_workers()
                continue
            if msg["event"] == event:
                return msg
            if msg["event"] == "error":
                raise ClusterError(f"Locust master: {msg.get('message')}")
            if msg["event"] == "exited":
                raise ClusterError(f"the Locust master exited{self._tail()}")

    def worker_name(self, index: int) -> str:
        """The name worker ``index`` (0-based) puts on its records and samples."""
        return f"{self._host}:{self.worker_procs[index].pid}"

    def _check_workers(self) -> None:
        """A worker that exited mid-run is a loss, not the end: the master rebalances its users
        onto the others. Only when every worker is gone does the run stop."""
        if self._quitting:  # workers exit because they were told to
            return
        gone = {loss.worker for loss in self.lost}
        for i, proc in enumerate(self.worker_procs):
            name = self.worker_name(i)
            if proc.poll() is not None and name not in gone:
                self.lost.append(WorkerLoss(worker=name, lost_at=time.monotonic(), exit_code=proc.returncode))
                print(
                    f"finishline: Locust worker {i + 1} ({name}) exited with code {proc.returncode}; "
                    f"the run goes on with the others{self._tail(f'worker-{i + 1}.log')}",
                    file=sys.stderr,
                )
        if self.worker_procs and len(self.lost) >= len(self.worker_procs):
            raise ClusterError(f"every Locust worker exited (the last with code {self.worker_procs[-1].returncode})")

    def _tail(self, name: str = "master.log") -> str:
        for fh in self._logs:
            fh.flush()
        path = self.run_dir / "logs" / name
        lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
        lines = [ln for ln in lines if ln.strip()]
        return f": {lines[-1].strip()}" if lines else ""

    # -- drive -----------------------------------------------------------------------------

    def _send(self, cmd: dict[str, Any]) -> None:
        assert self.master is not None and self.master.stdin is not None
        self.master.stdin.write(json.dumps(cmd).encode() + b"\n")
        self.master.stdin.flush()

    def phase(self, step: LocustStep, timeout: float = 60.0) -> float:
        """Announce and start a phase; returns when the master started it, or for a replay its
        origin, when its first row is due (monotonic s)."""
        self._send({"cmd": "phase", "step": step.model_dump(mode="json")})
        started = self.expect("phase_started", timeout)
        return float(started.get("origin", started["t"]))

    def announce(self, step: LocustStep, timeout: float = 30.0) -> None:
        """Tell the workers about a phase without starting users (``--web``: the UI starts them,
        of the phase's role)."""
        self._send({"cmd": "announce", "step": step.model_dump(mode="json")})
        self.expect("announced", timeout)

    def drain(self, timeout: float = 30.0) -> float:
        """After the last phase: workers schedule nothing new and let what was scheduled finish;
        returns when the master asked them (monotonic s). Quit afterwards."""
        self._send({"cmd": "drain"})
        return float(self.expect("draining", timeout)["t"])

    def report(self, timeout: float = 3.0) -> list[WorkerProgress]:
        """Stop every user at once, then each live worker's own account of its records."""
        self._send({"cmd": "report", "timeout": timeout})
        answer = self.expect("progress", timeout=timeout + 15)
        return [WorkerProgress.model_validate(w) for w in answer.get("workers", [])]

    def hurry(self) -> None:
        """Make every Locust process stop now (a second Ctrl-C): SIGTERM, which Locust handles by
        stopping its users and quitting; the workers still flush their records as they exit."""
        self._quitting = True
        for proc in [*self.worker_procs, *([self.master] if self.master is not None else [])]:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.send_signal(signal.SIGTERM)

    def check(self) -> None:
        """Raise if a process died mid-phase."""
        if self.master is not None and self.master.poll() is not None:
            raise ClusterError(f"the Locust master exited with code {self.master.returncode}{self._tail()}")
        self._check_workers()

    # -- stop ------------------------------------------------------------------------------

    def shutdown(self, force: bool = False, timeout: float = 30.0) -> None:
        """Stop users (``force``: at once), let workers flush and exit, make sure every process is gone."""
        self._quitting = True
        master = self.master
        if master is not None and master.poll() is None:
            try:
                self._send({"cmd": "quit", "force": force})
                self.expect("quit", timeout=20)
            except (ClusterError, OSError, ValueError):
                pass
        deadline = time.monotonic() + timeout + (0 if force else self.stop_timeout)
        for proc in self.worker_procs:  # workers exit on the master's quit after flushing their sinks
            left = max(0.1, deadline - time.monotonic())
            try:
                proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                stop_process(proc, timeout=5)
        if master is not None:
            try:
                master.wait(timeout=5)
            except subprocess.TimeoutExpired:
                stop_process(master, timeout=5)
            for stream in (master.stdin, master.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
        for fh in self._logs:
            fh.close()
        self._logs.clear()
