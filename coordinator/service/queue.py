"""The queue: the one place runs are submitted to (the API now, a scheduler later), and what
starts, watches and ends each run's process.

A submitted run waits in the queue until fewer than ``per_target`` runs of its target
(:func:`~coordinator.service.access.target_identity`) are running; then it starts as
``finishline run`` in a session of its own, writing under its folder of the runs directory.
The service never runs a scenario in its own process. Watching is polling: a run's process
is ours (a child, reaped with ``poll``) or, after a restart, one we adopted and know by pid and
start time; when it has ended, its ``summary.json`` says how (status, outcome, exit code).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from coordinator.results.summary import read_summary
from coordinator.run.ownership import LEDGER_FILE, OwnedProcess, ledger_of, stop_owned
from coordinator.run.recover import recover_abandoned
from coordinator.service.access import TOKEN_ENV
from coordinator.service.models import RunProcess, RunState, RunView, ServiceRun
from coordinator.service.store import RunStore
from loadgen.errors import UserError

SUBMITTED_FILE = "submitted.yaml"  # the scenario as submitted: kept only until the run has read it
LOG_FILE = "service.log"  # the run's stdout and stderr
log = logging.getLogger("finishline.service")


def new_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


class RunQueue:
    def __init__(self, store: RunStore, runs_dir: Path, per_target: int = 1) -> None:
        self.store = store
        self.runs_dir = runs_dir
        self.per_target = per_target
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        # submit, start, watch and cancel one at a time: the watch runs on a thread of its own (a
        # recovery may take seconds) while the API and the scheduler submit and cancel
        self._lock = threading.RLock()

    def folder(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    # -- submitting -----------------------------------------------------------------------------

    def submit(self, text: str, name: str, target: str, source: str = "api") -> ServiceRun:
        """Queue a validated scenario (``text``, YAML) and start it if its target is free."""
        with self._lock:
            return self._submit(text, name, target, source)

    def _submit(self, text: str, name: str, target: str, source: str) -> ServiceRun:
        run = ServiceRun(
            id=new_id(), name=name, target=target, status=RunState.QUEUED, submitted=time.time(), source=source
        )
        folder = self.folder(run.id)
        folder.mkdir(parents=True, mode=0o700)
        submitted = folder / SUBMITTED_FILE
        with os.fdopen(os.open(submitted, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(text)  # it may hold target headers: the owner's alone, removed once read
        self.store.enqueue(run)
        self.pump()
        return self.store.get(run.id) or run

    def positions(self) -> dict[str, int]:
        """Each queued run's place among those waiting for its target (1: the next to start)."""
        seen: dict[str, int] = {}
        out: dict[str, int] = {}
        for run_id in self.store.queued():
            run = self.store.get(run_id)
            if run is None:
                continue
            seen[run.target] = seen.get(run.target, 0) + 1
            out[run.id] = seen[run.target]
        return out

    def view(self, run: ServiceRun, positions: dict[str, int] | None = None) -> RunView:
        positions = self.positions() if positions is None else positions
        return RunView(**run.model_dump(), queue_position=positions.get(run.id))

    # -- starting -------------------------------------------------------------------------------

    def pump(self) -> None:
        """Start every queued run whose target has room, oldest first."""
        with self._lock:
            self._pump()

    def _pump(self) -> None:
        running: dict[str, int] = {}
        for run in self.store.all():
            if run.status is RunState.RUNNING:
                running[run.target] = running.get(run.target, 0) + 1
        for run_id in self.store.queued():
            waiting = self.store.get(run_id)
            if waiting is None or waiting.status is not RunState.QUEUED:
                self.store.forget_queued(run_id)
                continue
            if running.get(waiting.target, 0) >= self.per_target:
                continue
            self._start(waiting)
            running[waiting.target] = running.get(waiting.target, 0) + 1

    def _start(self, run: ServiceRun) -> None:
        folder = self.folder(run.id)
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}  # a run has no use for the token
        command = [sys.executable, "-m", "coordinator.cli", "run", str(folder / SUBMITTED_FILE)]
        command += ["--output-dir", str(folder), "--no-live"]
        with (folder / LOG_FILE).open("ab") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._children[run.id] = process
        started = psutil.Process(process.pid).create_time()
        run.status, run.started = RunState.RUNNING, time.time()
        run.process = RunProcess(pid=process.pid, started=started)
        self.store.dequeue(run)

    # -- watching -------------------------------------------------------------------------------

    def run_dir(self, run: ServiceRun) -> Path | None:
        """The run directory ``finishline run`` made in the run's folder (it names it), if it has yet."""
        if run.run_dir is not None:
            return Path(run.run_dir)
        folder = self.folder(run.id)
        made = [p.parent for p in folder.glob(f"*/{LEDGER_FILE}")] if folder.is_dir() else []
        return made[0] if made else None

    def _exit_code(self, run: ServiceRun) -> tuple[bool, int | None]:
        """Whether its process has ended, and its exit code when it was our child."""
        child = self._children.get(run.id)
        if child is not None:
            code = child.poll()
            return code is not None, code
        if run.process is None:
            return True, None
        alive = OwnedProcess(pid=run.process.pid, started=run.process.started).running()
        return alive is None, None

    def watch(self) -> None:
        """One look at every running run: note its run directory, drop the submitted scenario once
        read, finish those whose process has ended; then start what now has room."""
        with self._lock:
            self._watch()

    def _watch(self) -> None:
        changed = False
        for run in self.store.all():
            if run.status is not RunState.RUNNING:
                continue
            run_dir = self.run_dir(run)
            if run_dir is not None and run.run_dir is None:
                run.run_dir = str(run_dir)
                self.store.put(run)
            if run_dir is not None and (run_dir / "scenario.yaml").exists():
                (self.folder(run.id) / SUBMITTED_FILE).unlink(missing_ok=True)
            ended, code = self._exit_code(run)
            if ended:
                self._finish(run, code)
                changed = True
        if changed or self.store.queued():
            self._pump()

    def _finish(self, run: ServiceRun, code: int | None) -> None:
        self._children.pop(run.id, None)
        (self.folder(run.id) / SUBMITTED_FILE).unlink(missing_ok=True)
        run_dir = self.run_dir(run)
        summary_path = None if run_dir is None else run_dir / "summary.json"
        if run_dir is not None and summary_path is not None and not summary_path.exists() and code is None:
            _recover(run_dir)
        run.ended = time.time()
        run.run_dir = None if run_dir is None else str(run_dir)
        run.status, run.exit_code = RunState.FAILED, code
        if summary_path is not None and summary_path.exists():
            try:
                summary = read_summary(summary_path)
            except UserError:
                summary = None
            if summary is not None:
                run.status = RunState(summary.status.value)
                if summary.outcome is not None:
                    run.outcome = summary.outcome.outcome
                    run.headline = summary.outcome.headline
                    run.exit_code = summary.outcome.exit_code if code is None else code
        if run.headline is None and run.status is RunState.FAILED:
            run.headline = f"the run ended without a summary (exit {code}); see {LOG_FILE}"
        self.store.put(run)

    # -- cancelling -----------------------------------------------------------------------------

    def cancel(self, run: ServiceRun) -> ServiceRun:
        """A queued run leaves the queue; a running one gets SIGINT in its whole process group (it
        ends partial, keeping what it measured, exit 130). A finished run is left as it is."""
        with self._lock:
            return self._cancel(self.store.get(run.id) or run)

    def _cancel(self, run: ServiceRun) -> ServiceRun:
        if run.status is RunState.QUEUED:
            run.status, run.ended, run.cancel_requested = RunState.CANCELLED, time.time(), True
            run.headline = "cancelled before it started"
            self.store.dequeue(run)
            (self.folder(run.id) / SUBMITTED_FILE).unlink(missing_ok=True)
        elif run.status is RunState.RUNNING and run.process is not None:
            alive = OwnedProcess(pid=run.process.pid, started=run.process.started).running()
            if alive is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.process.pid, signal.SIGINT)
            run.cancel_requested = True
            self.store.put(run)
        return run

    def adopt(self) -> None:
        """After a restart: runs still going are watched again (by pid and start time); those that
        ended meanwhile are finished from their summary (or recovered, or marked failed)."""
        self.watch()


def _recover(run_dir: Path) -> None:
    """A run killed before it wrote its results (found after a restart): write them from what it
    left, as ``finishline recover`` does, and stop what it left running. It takes as long as the
    run's Redis takes to drain: the watch's thread waits, the API does not."""
    ledger = ledger_of(run_dir)
    if ledger is None or ledger.ended:
        return
    line = recover_abandoned(ledger)
    if line:
        log.info("%s", line)
    stop_owned(ledger)
    ledger.end()
