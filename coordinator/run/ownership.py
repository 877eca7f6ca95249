"""What a run started, written down as it goes, so that a run killed without a chance to clean up
(SIGKILL, a lost machine) leaves nothing behind for long.

Each run keeps a ledger, ``owned.json`` in its run directory and a copy under the state
directory (``$FINISHLINE_STATE_DIR``, default ``~/.local/state/finishline/runs``): the
coordinator's pid and start time, every process it started (pid with start time, so a reused
pid is never mistaken for ours), its Redis URL and the phases so far. A run that ends normally
marks its ledger ended. :func:`abandoned` finds the ledgers whose coordinator is gone;
:func:`clean` first recovers what such a run measured (its records still wait in its Redis;
``coordinator.run.recover``), then stops what it left running, removes the containers and
temporary folders of dead owners, and drops the ledger. ``finishline run`` does this before it
starts; ``finishline clean`` does only this.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import psutil
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coordinator import registry
from coordinator.results.files import write_atomic
from coordinator.results.summary import PhaseWindow
from coordinator.services.scratch import stale_scratch_dirs

LEDGER_FILE = "owned.json"
STATE_ENV = "FINISHLINE_STATE_DIR"


def state_dir() -> Path:
    base = os.environ.get(STATE_ENV)
    return Path(base) if base else Path.home() / ".local" / "state" / "finishline" / "runs"


class OwnedProcess(BaseModel):
    """A process, told apart from a later one with the same pid by its start time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pid: int
    started: float  # psutil's create_time (wall clock s)
    name: str = ""

    @classmethod
    def of(cls, process: psutil.Process) -> OwnedProcess:
        return cls(pid=process.pid, started=process.create_time(), name=" ".join(process.cmdline()[:4])[:200])

    def running(self) -> psutil.Process | None:
        """The process, if it is still this one and running."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.started) > 0.5 or process.status() == psutil.STATUS_ZOMBIE:
                return None
            return process
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None


class Ledger(BaseModel):
    """What one run started (``owned.json``)."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    run_dir: str
    owner: OwnedProcess
    redis_url: str | None = None
    private_redis: bool = False  # the run started its own redis-server (stopped by clean)
    processes: list[OwnedProcess] = Field(default_factory=list)
    windows: list[PhaseWindow] = Field(default_factory=list)
    ended: bool = False
    recovered: bool = False  # its results were written by ``finishline recover``

    @classmethod
    def begin(cls, run_id: str, run_dir: Path) -> Ledger:
        ledger = cls(run_id=run_id, run_dir=str(run_dir.resolve()), owner=OwnedProcess.of(psutil.Process()))
        ledger.save()
        return ledger

    def _paths(self) -> list[Path]:
        return [Path(self.run_dir) / LEDGER_FILE, state_dir() / f"{self.run_id}.json"]

    def save(self) -> None:
        text = self.model_dump_json(indent=2)
        for path in self._paths():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text)

    def note_children(self) -> None:
        """Add every process this coordinator has started so far (children of children too)."""
        known = {p.pid for p in self.processes}
        try:
            children = psutil.Process().children(recursive=True)
        except psutil.Error:
            return
        fresh = []
        for child in children:
            if child.pid in known:
                continue
            try:
                fresh.append(OwnedProcess.of(child))
            except psutil.Error:
                continue  # it ended meanwhile
        if fresh:
            self.processes.extend(fresh)
            self.save()

    def end(self) -> None:
        """The run ended and stopped what it started: nothing for a later clean to do."""
        self.ended = True
        self.save()
        state_copy = state_dir() / f"{self.run_id}.json"
        state_copy.unlink(missing_ok=True)

    @classmethod
    def read(cls, path: Path) -> Ledger | None:
        try:
            return cls.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            return None


def abandoned() -> list[Ledger]:
    """Ledgers of runs that did not end and whose coordinator no longer runs."""
    out = []
    for path in sorted(state_dir().glob("*.json")):
        ledger = Ledger.read(path)
        if ledger is None:
            path.unlink(missing_ok=True)  # not a ledger of ours (or cut short): nothing to act on
            continue
        if not ledger.ended and ledger.owner.running() is None:
            out.append(ledger)
    return out


def stop_owned(ledger: Ledger, timeout: float = 5.0) -> int:
    """SIGTERM, then SIGKILL, every process of the ledger that still runs; how many there were."""
    return stop_processes(ledger.processes, timeout)


def stop_processes(processes: list[OwnedProcess], timeout: float = 5.0) -> int:
    """SIGTERM, then SIGKILL, each of ``processes`` that still runs; how many there were."""
    alive = [p for p in (owned.running() for owned in processes) if p is not None]
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGTERM)
    _, left = psutil.wait_procs(alive, timeout=timeout)
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(left, timeout=timeout)
    return len(alive)


class CleanReport(BaseModel):
    """What :func:`clean` did."""

    recovered: list[str] = Field(default_factory=list)  # one line per recovered run
    processes: int = 0
    containers: int = 0
    scratch_dirs: int = 0

    def lines(self) -> list[str]:
        out = list(self.recovered)
        if self.processes or self.containers or self.scratch_dirs:
            out.append(
                f"stopped {self.processes} processes and removed {self.containers} containers and "
                f"{self.scratch_dirs} temporary folders that killed runs left behind"
            )
        return out


def clean(recover: Callable[[Ledger], str | None] | None = None) -> CleanReport:
    """Recover (with ``recover``) and clean up after every abandoned run; then the containers and
    temporary folders of owners that no longer run."""
    report = CleanReport()
    for ledger in abandoned():
        if recover is not None and not ledger.recovered:
            line = recover(ledger)
            if line:
                report.recovered.append(line)
        report.processes += stop_owned(ledger)
        ledger.end()
    for ref in registry.cleanups():
        cleanup: Callable[[], int] = ref.load()
        report.containers += cleanup()
    for path in stale_scratch_dirs():
        shutil.rmtree(path, ignore_errors=True)
        report.scratch_dirs += 1
    return report


def ledger_of(run_dir: Path) -> Ledger | None:
    return Ledger.read(run_dir / LEDGER_FILE)
