"""The Locust master process: a thin executor the coordinator drives over stdin/stdout.

It is a separate process because Locust needs gevent's monkey-patching, which the
coordinator (threads: collector, live display) must not have. Commands arrive as JSON
lines on stdin; events leave as JSON lines on stdout (Locust logs to stderr); every event
carries ``t``, the master's ``time.monotonic()`` when it was sent:

- ``{"cmd": "phase", "step": LocustStep}``: broadcast ``finishline_phase`` to every worker,
  then start the phase's users, replacing those of the other role (closed-loop users or one
  open-loop dispatcher per worker, ``loadgen.users``); answers ``{"event": "phase_started"}``,
  with ``origin`` (monotonic s) for a replay: when its trace window's start is due.
- ``{"cmd": "live", "view": LiveView}`` (``--web``): the LLM figures for the web UI's LLM tab and
  charts (``coordinator.run.webui``); no answer. With the web UI, its Start and Stop reach the
  coordinator as unsolicited ``{"event": "ui_start", "users", "spawn_rate", "host"}`` and
  ``{"event": "ui_stop"}``: the UI starts no users itself (``coordinator.run.web``).
- ``{"cmd": "drain"}``: after the last phase, stop changing users and broadcast
  ``finishline_drain``: workers schedule nothing new (the dispatcher stops, closed users start
  no new unit) and let what was scheduled finish; answers ``{"event": "draining"}``. Records
  keep the last phase's name. The coordinator watches the workers' samples for ``in_flight == 0``
  (or ``drain_timeout``), then quits.
- ``{"cmd": "report", "timeout": s}``: stop every user at once, then ask each worker how far it
  got (``finishline_report``; each answers ``finishline_progress``, a ``WorkerProgress``);
  answers ``{"event": "progress", "workers": [...]}`` with what came back within ``timeout``.
  The run asks when its Redis is gone, to count the records workers could not deliver.
- unsolicited ``{"event": "rebalanced", "users": n, "workers": n}``: after a worker went missing,
  the others run every user again.
- ``{"cmd": "quit", "force": bool}``: users stop (gracefully within ``stop_timeout``, the run's
  drain timeout; forced: at once, in-flight requests recorded as cancelled), workers quit
  (flushing their record sinks), the master exits; answers ``{"event": "quit"}``.

Workers join over Locust's own connection (``loadgen.config`` names the messages): each says
``finishline_hello`` (a ``WorkerHello``); the master answers that worker alone with
``finishline_config`` (the ``WorkerConfig`` JSON it holds in its own ``FINISHLINE_WORKER_CONFIG``)
or, when it runs another finishline version, ``finishline_refused`` (a ``WorkerRefused``). A
worker has joined once it answers ``finishline_configured`` without an error.

Unprompted events: ``listening`` (the master is up); ``worker_joined`` (its ``WorkerHello``
fields, ``client_id`` and ``clock_offset``: seconds from its monotonic clock to ours, 0 on this kernel) for each worker that joined; ``worker_refused`` (``name``, ``reason``)
for one refused or unable to run the configuration; ``workers_ready`` once ``workers`` workers
have joined (not merely connected), or ``error`` naming how many did within ``worker_timeout``
(the master then quits); ``worker_lost`` (``name``, ``client_id``) when a joined worker went
missing (no heartbeat: its host or link is down, its container killed) or quit mid-run; and
``error`` (a command failed, with its message).

Run as ``python -m coordinator.run.master SPEC.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from gevent.fileobject import FileObjectPosix
from locust import User, events
from locust.argument_parser import parse_options
from locust.env import Environment
from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING, MasterRunner
from locust.util.load_locustfile import load_locustfile
from pydantic import ValidationError

from coordinator.plan.steps import FAST_SPAWN, LocustStep
from coordinator.results.clocks import clock_offset
from coordinator.run.webprotocol import LIVE_COMMAND, LiveView
from coordinator.run.webui import WebHooks
from loadgen.config import (
    CONFIG_ENV,
    CONFIG_MESSAGE,
    CONFIGURED_MESSAGE,
    DRAIN_MESSAGE,
    HELLO_MESSAGE,
    PHASE_MESSAGE,
    PROGRESS_MESSAGE,
    REFUSED_MESSAGE,
    REPORT_MESSAGE,
    WorkerConfigured,
    WorkerHello,
    WorkerRefused,
    finishline_version,
    version_mismatch,
)
from loadgen.replay import REPLAY_LEAD
from loadgen.users import PhaseUsersDispatcher, classes_for

_out = sys.stdout


def emit(event: str, **fields: Any) -> None:
    """One protocol line on stdout (flushed: the coordinator reads it as it comes)."""
    _out.write(json.dumps({"event": event, "t": time.monotonic(), **fields}) + "\n")
    _out.flush()


def shares(total: int, workers: int) -> list[int]:
    """``total`` split over ``workers`` as evenly as whole numbers allow (the first ones get one more)."""
    base, extra = divmod(total, max(workers, 1))
    return [base + (1 if i < extra else 0) for i in range(workers)]


class MasterDriver:
    """Owns the ``MasterRunner``; applies the coordinator's commands in order."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        locustfile = spec["locustfile"]
        user_classes, _shapes = load_locustfile(locustfile)
        self.user_classes = {name: cls for name, cls in user_classes.items() if not getattr(cls, "abstract", False)}
        for dispatcher in self.classes_for("open"):
            dispatcher.fixed_count = int(spec["workers"])  # one per worker, whatever a start asks for
        first_users = int(spec.get("first_users", 1))
        bind_host = str(spec.get("bind_host") or "127.0.0.1")
        options = parse_options(
            [
                "-f",
                locustfile,
                "--master",
                "-u",
                str(first_users),
                "-r",
                str(spec.get("first_spawn_rate") or max(first_users, 1)),
                "--web-host",
                "127.0.0.1",
                "--master-bind-host",
                bind_host,
                "--master-bind-port",
                str(spec["master_port"]),
                "--enable-rebalancing",  # a lost worker's users move to the others at once
            ]
        )
        self.env = Environment(
            user_classes=list(self.user_classes.values()),
            events=events,
            parsed_options=options,
            stop_timeout=float(spec.get("stop_timeout", 0.0)),
            host=spec.get("host") or None,
            dispatcher_class=PhaseUsersDispatcher,  # a phase's users replace the other role's
        )
        self.runner: MasterRunner = self.env.create_master_runner(bind_host, int(spec["master_port"]))
        self._progress: dict[str, dict[str, Any]] = {}
        self.runner.register_message(PROGRESS_MESSAGE, self._on_progress)
        # The configuration stays in this process's environment: it never touches the disk.
        self.worker_config: dict[str, Any] = json.loads(os.environ.get(CONFIG_ENV) or "{}")
        self.version = finishline_version()
        self._hellos: dict[str, WorkerHello] = {}  # client id -> the worker it said it is
        self.joined: dict[str, WorkerHello] = {}  # client id -> a worker that applied the configuration
        self.refused: dict[str, str] = {}  # worker name -> why it is not in the run
        self._ready = False  # workers_ready was said: a worker joining later is sent the current phase
        self._last_phase: dict[str, Any] | None = None
        self._offsets: dict[str, float] = {}  # client id -> its clock's offset from ours (coordinator.results.clocks)
        self.runner.register_message(HELLO_MESSAGE, self._on_hello)
        self.runner.register_message(CONFIGURED_MESSAGE, self._on_configured)
        self.web_ui = None
        self.web_hooks: WebHooks | None = None
        self._spawner: gevent.Greenlet | None = None
        if spec.get("web_port"):
            self.web_ui = self.env.create_web_ui("127.0.0.1", int(spec["web_port"]))
            self.web_hooks = WebHooks(self.web_ui, emit, server_tab=bool(spec.get("server_figures")))
        events.init.fire(environment=self.env, runner=self.runner, web_ui=self.web_ui)

    def _on_hello(self, msg: Any, **_: Any) -> None:
        client = str(msg.node_id)
        try:
            hello = WorkerHello.model_validate(msg.data)
        except ValidationError:
            self._refuse(client, client, "its hello was not a finishline worker's; install the same finishline version")
            return
        reason = version_mismatch(self.version, hello.version)
        if reason is None and any(h.name == hello.name for c, h in self._hellos.items() if c != client):
            # its records would be taken for the other's: the name is what tells workers apart
            reason = (
                f"a worker named {hello.name} (host:pid) is already in the run; run each on its own host or container"
            )
        if reason is not None:
            self._refuse(client, hello.name, reason)
            return
        self._hellos[client] = hello
        self._offsets[client] = clock_offset(hello.boot_id, hello.clock, time.monotonic())
        self.runner.send_message(CONFIG_MESSAGE, self.worker_config, client_id=client)

    def _refuse(self, client: str, name: str, reason: str) -> None:
        self.refused[name] = reason
        self.runner.send_message(REFUSED_MESSAGE, WorkerRefused(reason=reason).model_dump(), client_id=client)
        emit("worker_refused", name=name, reason=reason)

    def _on_configured(self, msg: Any, **_: Any) -> None:
        client = str(msg.node_id)
        answer = WorkerConfigured.model_validate(msg.data)
        hello = self._hellos.get(client)
        if hello is None:
            return
        if answer.error is not None:
            self.refused[hello.name] = answer.error
            emit("worker_refused", name=hello.name, reason=answer.error)
            return
        self.joined[client] = hello
        emit("worker_joined", client_id=client, clock_offset=self._offsets.get(client, 0.0), **hello.model_dump())
        if self._ready and self._last_phase is not None:  # it joined mid-run: the phase it missed
            self.runner.send_message(PHASE_MESSAGE, self._last_phase, client_id=client)

    def _active(self) -> set[str]:
        return {cid for cid, client in self.runner.clients.items() if client.state != STATE_MISSING}

    def joined_count(self) -> int:
        """Workers that applied the configuration and are still there."""
        return len(self.joined.keys() & self._active())

    def wait_for_workers(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.joined_count() < count:
            if time.monotonic() > deadline:
                return False
            gevent.sleep(0.05)
        self._ready = True
        return True

    def shortfall(self, count: int, timeout: float) -> str:
        """One line: how many of ``count`` workers joined within ``timeout``, and who was refused why."""
        line = f"only {self.joined_count()} of {count} workers joined within {timeout:g} s"
        if self.refused:
            line += f"; {len(self.refused)} refused: " + "; ".join(f"{n}: {r}" for n, r in self.refused.items())
        return line

    def classes_for(self, mode: str) -> list[type[User]]:
        """The locustfile's user classes that serve a phase mode (marked with ``finishline_mode``)."""
        return classes_for(mode, self.user_classes.values())

    def _wait_spawned(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.runner.state == STATE_SPAWNING and time.monotonic() < deadline:
            gevent.sleep(0.02)

    def announce(self, step: LocustStep) -> None:
        # What a worker joining later is sent: with shares, they were handed out, so it begins none;
        # a replay's rows are dealt by worker index, so it is sent nothing and idles.
        late = step.command if step.requests is None else step.command.model_copy(update={"requests": 0})
        self._last_phase = None if step.command.replay is not None else late.model_dump(mode="json")
        if step.requests is None:
            self.runner.send_message(PHASE_MESSAGE, step.command.model_dump(mode="json"))
        else:  # each worker its share of the requests, so that together they send exactly that many
            active = sorted(self.joined.keys() & self._active())
            for cid, share in zip(active, shares(step.requests, len(active)), strict=True):
                command = step.command.model_copy(update={"requests": share})
                self.runner.send_message(PHASE_MESSAGE, command.model_dump(mode="json"), client_id=cid)
        # Starts that name no classes (the rebalancing after a worker is lost) take the
        # announced phase's role.
        PhaseUsersDispatcher.phase_classes = self.classes_for(step.command.mode)

    def phase(self, step: LocustStep) -> None:
        """Announce, then change users in a greenlet (Locust's start blocks for a whole ramp).

        A replay's origin (when its window's start is due, the same for every worker) is named
        here, ``REPLAY_LEAD`` ahead, so every worker's dispatcher is waiting when it comes."""
        origin: dict[str, float] = {}
        replay = step.command.replay
        if replay is not None:
            wall, mono = time.time(), time.monotonic()
            replay = replay.model_copy(update={"origin": wall + REPLAY_LEAD})
            step = step.model_copy(update={"command": step.command.model_copy(update={"replay": replay})})
            origin["origin"] = mono + REPLAY_LEAD
        self.announce(step)
        if self._spawner is not None:
            self._spawner.kill(block=True)
        self._spawner = gevent.spawn(self._spawn, step)
        emit("phase_started", name=step.name, **origin)

    def _spawn(self, step: LocustStep) -> None:
        classes = self.classes_for(step.command.mode)
        if step.start_users is not None and step.start_users != step.users:
            self.runner.start(step.start_users, spawn_rate=FAST_SPAWN, user_classes=classes)
            self._wait_spawned()
        self.runner.start(step.users, spawn_rate=step.spawn_rate, user_classes=classes)

    def watch_workers(self) -> None:
        """Say once per worker when a joined one is gone (``worker_lost``: missing, or it quit), and
        once per loss when its users run again on the others (``rebalanced``); the coordinator
        counts the loss and tells how long users ran short."""
        known = set(self.runner.clients.keys())
        lost: set[str] = set()
        short = False
        while True:
            gevent.sleep(0.25)
            active = self._active()
            for cid in self.joined.keys() - active - lost:
                lost.add(cid)
                emit("worker_lost", name=self.joined[cid].name, client_id=cid)
            short = short or bool(known - active)
            known = active
            runner = self.runner
            if short and runner.state == STATE_RUNNING and runner.user_count >= runner.target_user_count:
                emit("rebalanced", users=runner.user_count, workers=len(active))
                short = False

    def stop_users(self) -> None:
        """Stop every user at once (in-flight requests are recorded as cancelled)."""
        if self._spawner is not None:
            self._spawner.kill(block=True)
            self._spawner = None
        if self.runner.user_count:
            self.env.stop_timeout = 0.0  # sent with the spawn job: users are killed, in-flight recorded as cancelled
            self.runner.start(0, spawn_rate=10_000)
            deadline = time.monotonic() + 10
            while self.runner.user_count and time.monotonic() < deadline:
                gevent.sleep(0.05)

    def report(self, timeout: float = 3.0) -> list[dict[str, Any]]:
        """Ask every worker how far it got (``WorkerProgress``); the answers within ``timeout``."""
        answers: dict[str, dict[str, Any]] = {}
        self._progress = answers
        self.runner.send_message(REPORT_MESSAGE)
        deadline = time.monotonic() + timeout
        while len(answers) < self.joined_count() and time.monotonic() < deadline:
            gevent.sleep(0.05)
        return list(answers.values())

    def _on_progress(self, msg: Any, **_: Any) -> None:
        data = dict(msg.data)
        self._progress[str(data.get("worker"))] = data

    def drain(self) -> None:
        """No user changes any more (a ramp in progress stops where it is); workers schedule
        nothing new and let what was scheduled finish."""
        if self._spawner is not None:
            self._spawner.kill(block=True)
            self._spawner = None
        self.runner.send_message(DRAIN_MESSAGE)

    def quit(self, force: bool = False) -> None:
        """Workers stop their users (gracefully within stop_timeout, or at once when forced) and exit.

        Locust's own ``stop`` message would block each worker for ``stop_timeout`` before
        it reads ``quit``, so a run ends with ``quit`` alone.
        """
        if self._spawner is not None:
            self._spawner.kill(block=True)
        if force:
            self.stop_users()
        self.runner.quit()
        if self.web_ui is not None:
            self.web_ui.stop()
        emit("quit")


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    driver = MasterDriver(spec)
    emit("listening", web_port=spec.get("web_port"))
    count, timeout = int(spec["workers"]), float(spec.get("worker_timeout", 60))
    if not driver.wait_for_workers(count, timeout):
        emit("error", message=driver.shortfall(count, timeout))
        driver.quit()
        return 1
    emit("workers_ready", workers=driver.joined_count())
    gevent.spawn(driver.watch_workers)
    stdin = FileObjectPosix(sys.stdin.fileno(), "rb", close=False)
    while True:
        line = stdin.readline()
        if not line:  # the coordinator went away: stop everything
            driver.quit(force=True)
            return 0
        cmd = json.loads(line)
        try:
            if cmd["cmd"] == "phase":
                driver.phase(LocustStep.model_validate(cmd["step"]))
            elif cmd["cmd"] == "report":
                driver.stop_users()
                emit("progress", workers=driver.report(float(cmd.get("timeout", 3.0))))
            elif cmd["cmd"] == LIVE_COMMAND:
                if driver.web_hooks is not None:
                    driver.web_hooks.update(LiveView.model_validate(cmd["view"]))
            elif cmd["cmd"] == "drain":
                driver.drain()
                emit("draining")
            elif cmd["cmd"] == "quit":
                driver.quit(force=bool(cmd.get("force")))
                return 0
        except Exception as exc:  # noqa: BLE001 - reported to the coordinator, which tears down
            emit("error", message=f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
