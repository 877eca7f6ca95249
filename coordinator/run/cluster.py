"""The Locust master and its workers, started and always stopped by the run.

The master is a local process driven over pipes (``coordinator.run.master``); workers come
from their sources (the scenario's ``workers``): local processes (``LocalWorkers``), remote
ones the user starts with ``finishline worker``, containers a registered launcher starts
(``coordinator.run.launchers``). Every one joins over Locust's messages and says who it is;
the cluster keeps the roster (``workers.json``) and counts a worker gone mid-run as a loss, the
same whether its process exited or the master saw it go missing.

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
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from coordinator import registry
from coordinator.plan.steps import LocustStep
from coordinator.results.workers import WorkerEntry, WorkerSource
from coordinator.run.launchers import LocalWorkers, MasterAddress, WorkerLauncher, last_line
from coordinator.run.webprotocol import LIVE_COMMAND, UI_EVENTS, UI_START, LiveView, UiStart, UiStop
from coordinator.scenario.workers import WorkersSpec
from coordinator.services.ports import connect_address, free_port, reachable_address, url_host
from coordinator.services.process import stop_process
from loadgen.config import CONFIG_ENV, WorkerHello, WorkerProgress
from loadgen.errors import ServiceError

# unsolicited master events, applied in the order they came: a loss before the rebalance that follows it
_NOTICES = ("worker_joined", "worker_refused", "worker_lost", "rebalanced")


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
    """One master (driven over pipes, see ``coordinator.run.master``) and its workers, from every source."""

    def __init__(
        self,
        run_dir: Path,
        worker_config: str,
        workers: WorkersSpec,
        env: dict[str, str],
        web_port: int | None = None,
        first_users: int = 1,
        first_spawn_rate: float | None = None,
        server_figures: bool = False,
        stop_timeout: float = 0.0,
        host: str = "",
        run_id: str = "",
        pass_env: tuple[str, ...] = (),
        clock_offsets: dict[str, float] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.run_id = run_id
        self.host = host  # the target's base URL: what Locust's UI shows as the host under test
        self.sources = workers
        self.workers = workers.total
        self.env = {**env, "PYTHONUNBUFFERED": "1"}
        # A worker in a container (or another launcher's) has its own PATH, HOME and Python: it gets
        # finishline's variables and those named in ``pass_env`` (the target's API key), no others.
        self._outside_env = {
            k: v for k, v in self.env.items() if k.startswith("FINISHLINE_") or k in (*pass_env, "PYTHONUNBUFFERED")
        }
        # The configuration travels in the master's environment, never in a file (a target header
        # may hold a secret, and a file would outlive a killed run); workers get it from the master.
        self._master_env = {**self.env, CONFIG_ENV: worker_config}
        self.web_port = web_port
        self.first_users = first_users
        self.first_spawn_rate = first_spawn_rate if first_spawn_rate is not None else max(first_users, 1)
        self.server_figures = server_figures  # the web UI shows the server's own figures (--web)
        self.stop_timeout = stop_timeout
        self.bind_host = workers.bind_host
        self.master_port = workers.master_port or free_port(self.bind_host)
        self.master: subprocess.Popen[bytes] | None = None
        self.local = LocalWorkers(locustfile_path())
        self.launchers: list[tuple[WorkerSource, WorkerLauncher, int]] = []
        self.roster: dict[str, WorkerEntry] = {}  # worker name -> who it said it is, where from
        # worker name -> seconds from its clock to ours, for workers on another kernel; the
        # collector moves their records and samples onto our clock (coordinator.results.clocks)
        self.clock_offsets: dict[str, float] = clock_offsets if clock_offsets is not None else {}
        self.refused: dict[str, str] = {}  # worker name -> why it is not in the run
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._notices: queue.Queue[dict[str, Any]] = queue.Queue()
        self._ui: queue.Queue[dict[str, Any]] = queue.Queue()  # the web UI's Start and Stop (--web)
        self.lost: list[WorkerLoss] = []  # workers gone mid-run, oldest first
        self._ready = False  # every expected worker joined
        self._quitting = False
        self._logs: list[IO[bytes]] = []
        self._reader: threading.Thread | None = None

    # -- start -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Every expected worker joined: the run's load can start."""
        return self._ready

    @property
    def address(self) -> MasterAddress:
        """Where workers elsewhere reach the master."""
        return MasterAddress(reachable_address(self.bind_host), self.master_port)

    def start(self, timeout: float = 60.0) -> None:
        """Start the master and every launcher's workers; returns once every expected worker joined
        (within the scenario's ``wait_s``), else raises naming how many did."""
        wait_s = self.sources.wait_s
        spec = {
            "locustfile": self.local.locustfile,
            "bind_host": self.bind_host,
            "master_port": self.master_port,
            "workers": self.workers,
            "web_port": self.web_port,
            "first_users": self.first_users,
            "first_spawn_rate": self.first_spawn_rate,
            "server_figures": self.server_figures,
            "worker_timeout": wait_s,
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
            env=self._master_env,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_master, name="finishline-master-reader", daemon=True)
        self._reader.start()
        # Local workers start beside the master: each imports Locust while the master does (about
        # a second saved per run); a worker's connection waits until the master listens.
        self.launchers.append((WorkerSource.LOCAL, self.local, self.sources.local))
        if self.sources.local:
            self.local.start(
                self.sources.local,
                MasterAddress(connect_address(self.bind_host), self.master_port),
                self.env,
                self.run_dir,
            )
        self.expect("listening", timeout=timeout)
        if self.sources.containers:
            factory = registry.worker_launcher("containers").load()
            launcher = factory(self.sources, self.run_id)
            self.launchers.append((WorkerSource.CONTAINER, launcher, self.sources.containers))
            launcher.start(self.sources.containers, self.address, self._outside_env, self.run_dir)
        remote = self.sources.remote
        if remote:
            print(
                f"finishline: waiting up to {wait_s:g} s for {remote} remote worker{'s' if remote > 1 else ''}: "
                f"finishline worker --master {url_host(self.address.host)}:{self.master_port}",
                file=sys.stderr,
                flush=True,
            )
        self.expect("workers_ready", timeout=wait_s + timeout)
        self._ready = True

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
            event = msg.get("event")
            (self._notices if event in _NOTICES else self._ui if event in UI_EVENTS else self._events).put(msg)
        self._events.put({"event": "exited"})

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """Wait for the master's next ``event``; a failure or exit becomes a ``ClusterError``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClusterError(f"the Locust master did not report {event!r} within {timeout:.0f} s{self._tail()}")
            try:
                msg = self._events.get(timeout=min(left, 0.25))
            except queue.Empty:
                self._check_workers()
                continue
            self._take_notices()
            if msg["event"] == event:
                return msg
            if msg["event"] == "error":
                where = "workers" if event == "workers_ready" else "Locust master"
                raise ClusterError(f"{where}: {msg.get('message')}")
            if msg["event"] == "exited":
                raise ClusterError(f"the Locust master exited{self._tail()}")

    # -- who is in the run -----------------------------------------------------------------

    def _take_notices(self) -> None:
        """Apply what the master said about workers joining, refused or gone (in this thread)."""
        while True:
            try:
                msg = self._notices.get_nowait()
            except queue.Empty:
                return
            if msg["event"] == "worker_joined":
                hello = WorkerHello.model_validate({k: msg[k] for k in WorkerHello.model_fields if k in msg})
                offset = float(msg.get("clock_offset", 0.0))
                if offset:  # before its first record: the collector reads this as records come
                    self.clock_offsets[hello.name] = offset
                self._joined(hello, offset)
            elif msg["event"] == "worker_refused":
                self.refused[str(msg["name"])] = str(msg["reason"])
                print(f"finishline: worker {msg['name']} refused: {msg['reason']}", file=sys.stderr, flush=True)
            elif msg["event"] == "worker_lost" and not self._quitting:
                self._lose(str(msg["name"]), None, float(msg["t"]), "went missing (no heartbeat) or quit")
            elif msg["event"] == "rebalanced":  # a loss's users run again on the others
                for loss in self.lost:
                    if loss.rebalanced_at is None and loss.lost_at <= float(msg["t"]) + 5.0:
                        loss.rebalanced_at = float(msg["t"])

    def _joined(self, hello: WorkerHello, clock_offset: float) -> None:
        if hello.name in self.local.logs:
            source = WorkerSource.LOCAL
        elif hello.container is not None:
            source = WorkerSource.CONTAINER
        else:
            source = WorkerSource.REMOTE
        self.roster[hello.name] = WorkerEntry(
            name=hello.name,
            host=hello.host,
            pid=hello.pid,
            container=hello.container,
            version=hello.version,
            python=hello.python,
            source=source,
            joined_at=datetime.now(UTC),
            clock_offset_s=clock_offset,
        )
        if source is not WorkerSource.LOCAL:
            print(f"finishline: {source.value} worker {hello.name} joined", file=sys.stderr, flush=True)

    def _name_of(self, label: str) -> str:
        """The worker a launcher's label names: by its name, else by its container."""
        if label in self.roster:
            return label
        return next((w.name for w in self.roster.values() if w.container == label), label)

    def _lose(self, name: str, exit_code: int | None, at: float, how: str) -> None:
        """Count a worker gone mid-run once, however many ways the run learns it (its process exited,
        the master saw it go); the exit code is kept when one of them knows it."""
        known = next((loss for loss in self.lost if loss.worker == name), None)
        if known is not None:
            if known.exit_code is None:
                known.exit_code = exit_code
            return
        self.lost.append(WorkerLoss(worker=name, lost_at=at, exit_code=exit_code))
        entry = self.roster.get(name)
        if entry is not None:
            self.roster[name] = entry.model_copy(update={"lost_at": datetime.now(UTC)})
        source = entry.source.value if entry is not None else "Locust"
        tail = self.local.tail(name)
        print(
            f"finishline: {source} worker {name} {how}; the run goes on with the others"
            + (f": {tail}" if tail else ""),
            file=sys.stderr,
            flush=True,
        )

    def _check_workers(self) -> None:
        """A worker that exited mid-run is a loss, not the end: the master rebalances its users
        onto the others. Only when every worker is gone does the run stop. One that exits before
        every expected worker joined ends the start."""
        if self._quitting:  # workers exit because they were told to
            return
        self._take_notices()
        for _source, launcher, _count in self.launchers:
            for label, code in launcher.exited():
                if not self._ready:
                    tail = self.local.tail(label)
                    raise ClusterError(
                        f"Locust worker {label} exited with code {code} before the run started"
                        + (f": {tail}" if tail else "")
                    )
                self._lose(self._name_of(label), code, time.monotonic(), f"exited with code {code}")
        if self._ready and self.roster and len(self.lost) >= len(self.roster):
            raise ClusterError(f"every Locust worker is gone (the last, {self.lost[-1].worker}, {self._how_last()})")

    def _how_last(self) -> str:
        code = self.lost[-1].exit_code
        return "went missing" if code is None else f"with exit code {code}"

    def workers_seen(self) -> list[WorkerEntry]:
        """Every worker that joined the run, in the order they did (``workers.json``)."""
        self._take_notices()
        return list(self.roster.values())

    def _tail(self, name: str = "master.log") -> str:
        for fh in self._logs:
            fh.flush()
        line = last_line(self.run_dir / "logs" / name)
        return f": {line}" if line else ""

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

    def ui_events(self) -> list[UiStart | UiStop]:
        """What the web UI asked since the last call, in order (``coordinator.run.web``)."""
        out: list[UiStart | UiStop] = []
        while True:
            try:
                msg = self._ui.get_nowait()
            except queue.Empty:
                return out
            out.append(UiStart.model_validate(msg) if msg["event"] == UI_START else UiStop())

    def live(self, view: LiveView) -> None:
        """The web UI's LLM figures for the master to show; it does not answer."""
        self._send({"cmd": LIVE_COMMAND, "view": view.model_dump(mode="json")})

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
        for proc in [*self.local.procs, *([self.master] if self.master is not None else [])]:
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
        self._take_notices()  # a loss or rebalance said just before
        self._quitting = True
        master = self.master
        if master is not None and master.poll() is None:
            try:
                self._send({"cmd": "quit", "force": force})
                self.expect("quit", timeout=20)
            except (ClusterError, OSError, ValueError):
                pass
        deadline = time.monotonic() + timeout + (0 if force else self.stop_timeout)
        for _source, launcher, _count in self.launchers:  # workers exit on the master's quit after flushing
            try:
                launcher.stop(max(0.1, deadline - time.monotonic()))
            except Exception as exc:  # noqa: BLE001 - the others are stopped all the same
                print(f"finishline: could not stop every worker: {exc}", file=sys.stderr)
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
