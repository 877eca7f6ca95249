"""Who starts a run's Locust workers: the seam between the cluster and each source of workers.

The cluster (``coordinator.run.cluster``) starts the master, then asks each launcher to start
its workers against the master's address; every worker then joins over Locust's own messages
(``loadgen.joining``), wherever it runs. A launcher only starts, watches and stops processes:
``LocalWorkers`` here for the scenario's ``local`` workers; a feature registers others by
source name (``coordinator.registry.worker_launcher``: ``containers``). Remote workers have no
launcher: the user starts them with ``finishline worker --master HOST:PORT``.

A launcher's label for a worker is best the worker's own name (``host:pid``, as its hello
says) or its container (what it finds in ``FINISHLINE_WORKER_CONTAINER``): the cluster counts
a worker that exits and that the master sees go as one loss by that label.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from coordinator.services.process import stop_process


@dataclass(frozen=True, slots=True)
class MasterAddress:
    host: str  # the address workers connect to
    port: int


class WorkerLauncher(Protocol):
    def start(self, count: int, master: MasterAddress, env: dict[str, str], run_dir: Path) -> None: ...
    def exited(self) -> list[tuple[str, int | None]]:
        """(label, exit code) of each worker it started that has exited since start (all so far)."""

    def stop(self, timeout: float) -> None:
        """Make sure every worker it started is gone (after the master's quit they exit by themselves)."""


def worker_command(locustfile: str, master: MasterAddress) -> list[str]:
    """A Locust worker of this Python loading finishline's locustfile, joining ``master``."""
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        locustfile,
        "--worker",
        "--master-host",
        master.host,
        "--master-port",
        str(master.port),
        "--loglevel",
        "WARNING",
    ]


class LocalWorkers:
    """Worker processes on this machine, each in its own session (a Ctrl-C reaches only the
    coordinator, which stops them in order) with its output in ``logs/worker-N.log``."""

    def __init__(self, locustfile: str) -> None:
        self.locustfile = locustfile
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: dict[str, Path] = {}  # label -> its log
        self._handles: list[IO[bytes]] = []
        self._host = socket.gethostname()

    def label(self, proc: subprocess.Popen[bytes]) -> str:
        """The worker's name on its records and samples (``loadgen.telemetry.worker_id``)."""
        return f"{self._host}:{proc.pid}"

    def start(self, count: int, master: MasterAddress, env: dict[str, str], run_dir: Path) -> None:
        (run_dir / "logs").mkdir(exist_ok=True)
        for _ in range(count):
            path = run_dir / "logs" / f"worker-{len(self.procs) + 1}.log"
            handle = path.open("wb")
            self._handles.append(handle)
            proc = subprocess.Popen(
                worker_command(self.locustfile, master),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            self.procs.append(proc)
            self.logs[self.label(proc)] = path

    def exited(self) -> list[tuple[str, int | None]]:
        return [(self.label(proc), proc.returncode) for proc in self.procs if proc.poll() is not None]

    def stop(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for proc in self.procs:  # workers exit on the master's quit after flushing their sinks
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                stop_process(proc, timeout=5)
        for handle in self._handles:
            handle.close()
        self._handles.clear()

    def tail(self, label: str) -> str:
        """The last line a worker wrote, or ''."""
        for handle in self._handles:
            handle.flush()
        return last_line(self.logs.get(label))


def last_line(path: Path | None) -> str:
    """The last non-blank line of a log (flushed by its writer first), or '' when there is none."""
    lines = path.read_text(errors="replace").strip().splitlines() if path is not None and path.exists() else []
    lines = [ln for ln in lines if ln.strip()]
    return lines[-1].strip() if lines else ""
