"""What a worker process runs: the current phase, the closed-loop users' iterations, and the
open-loop dispatcher that sends on schedule whatever the replies do.

In an open phase the worker's one ``OpenLoopDispatcher`` (``loadgen.users``) runs
:meth:`WorkerRuntime.dispatch`: it sleeps until each scheduled time and spawns the unit of
traffic in its own greenlet, never waiting for replies. At most ``max_concurrency`` (this
worker's share) run at once; the rest wait in the client queue, whose wait is measured
(``started - scheduled``), so a late client is visible in the records rather than silently
slowing the schedule down (coordinated omission).

Every unit carries the phase in which it was scheduled (not the one current when it leaves the
queue or finishes). At the end of a run the master asks the workers to drain (the
``finishline_drain`` message): nothing new is scheduled (the dispatcher stops, closed users
start no new unit), while what was scheduled goes on: units in flight and those queued in the
client finish. When the run then stops gracefully, units still queued are not sent, while those
in flight get Locust's ``stop_timeout`` (the run's ``drain_timeout``) to finish, as closed users
do; a forced stop (timeout 0) cancels them at once.
"""

from __future__ import annotations

import gc
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.lock
import gevent.pool

from loadgen.arrival import rate_at, schedule
from loadgen.budget import BudgetSpent
from loadgen.client import EndpointClient
from loadgen.config import (
    DRAIN_MESSAGE,
    PHASE_MESSAGE,
    PROGRESS_MESSAGE,
    REPORT_MESSAGE,
    PhaseCommand,
    WorkerConfig,
    WorkerProgress,
)
from loadgen.conversation import run_unit
from loadgen.prompts import PromptFactory
from loadgen.records import RequestRecord
from loadgen.replay import ReplayCommand
from loadgen.replay import schedule as replay_schedule
from loadgen.request import Requester, Scheduling
from loadgen.spec import WorkloadSpec
from loadgen.stream.sink import RecordSink
from loadgen.telemetry import LoadState, WorkerSampler, worker_id

log = logging.getLogger(__name__)

_RUNTIME_ATTR = "finishline_runtime"
_EARLY_ATTR = "finishline_early_messages"  # what the master sent before the runtime was installed
REPLAY_AHEAD = 0.05  # seconds before its time a replayed row's unit starts making its request
REPLAY_CONNECTIONS = 4  # connections a worker opens before a replay's origin


def runtime_of(environment: Any) -> WorkerRuntime | None:
    """The runtime :func:`install` attached to a Locust environment, if any."""
    runtime: WorkerRuntime | None = getattr(environment, _RUNTIME_ATTR, None)
    return runtime


def listen(environment: Any) -> None:
    """Listen for the master's phase, drain and report messages (once per environment).

    Until a runtime is installed, each message is kept in order and applied when it is: a worker
    that joins over the network (``loadgen.joining``) listens before it asks for its
    configuration, so a phase announced meanwhile is not lost."""
    runner = environment.runner
    if runner is None or not hasattr(runner, "register_message") or getattr(environment, _EARLY_ATTR, None) is not None:
        return
    early: list[tuple[str, Any]] = []
    setattr(environment, _EARLY_ATTR, early)

    def handler(kind: str) -> Callable[..., None]:
        def on_message(msg: Any, **_: Any) -> None:
            runtime = runtime_of(environment)
            if runtime is None:
                early.append((kind, msg.data))
            else:
                _apply(runtime, runner, kind, msg.data)

        return on_message

    for kind in (PHASE_MESSAGE, DRAIN_MESSAGE, REPORT_MESSAGE):
        runner.register_message(kind, handler(kind))


def _apply(runtime: WorkerRuntime, runner: Any, kind: str, data: Any) -> None:
    if kind == PHASE_MESSAGE:
        runtime.set_phase(PhaseCommand.model_validate(data))
    elif kind == DRAIN_MESSAGE:
        runtime.drain()
    else:
        runner.send_message(PROGRESS_MESSAGE, runtime.progress().model_dump())


def install(environment: Any, runtime: WorkerRuntime) -> WorkerRuntime:
    """Attach a runtime to a Locust environment, listen for the master's messages (phase, drain,
    report; those that came before it are applied now) and follow the runner's life cycle;
    starts the runtime."""
    setattr(environment, _RUNTIME_ATTR, runtime)
    listen(environment)
    environment.events.test_start.add_listener(lambda **_: runtime.resume())
    environment.events.test_stopping.add_listener(lambda **_: runtime.begin_stop())
    environment.events.test_stop.add_listener(lambda **_: runtime.stop_traffic())
    runtime.start()
    early: list[tuple[str, Any]] = getattr(environment, _EARLY_ATTR, None) or []
    while early:
        kind, data = early.pop(0)
        _apply(runtime, environment.runner, kind, data)
    return runtime


def await_runtime(environment: Any, timeout: float) -> WorkerRuntime | None:
    """The environment's runtime, waiting up to ``timeout`` seconds for it: users the master
    spawns on a worker that joined mid-run may start before its configuration is applied."""
    deadline = time.monotonic() + timeout
    runtime = runtime_of(environment)
    while runtime is None and time.monotonic() < deadline:
        gevent.sleep(0.02)
        runtime = runtime_of(environment)
    return runtime


class WorkerRuntime:
    """Per-process state shared by the Locust users of one worker."""

    def __init__(
        self,
        config: WorkerConfig,
        environment: Any = None,
        record: Callable[[RequestRecord], None] | None = None,
        worker_index: int = 0,
    ) -> None:
        self.config = config
        self.environment = environment
        self.worker = worker_id()
        self._worker_index = worker_index
        self.client = EndpointClient(config.target)
        self.sink: RecordSink | None = None
        self.sampler: WorkerSampler | None = None
        if record is None:
            opts = config.record
            self.sink = RecordSink(
                config.redis_url,
                config.run_id,
                opts.batch_size,
                opts.flush_interval,
                opts.stream_maxlen,
                worker=self.worker,
            )
            record = self.sink.add
        self.requester = Requester(
            client=self.client,
            retry=config.retry,
            run_id=config.run_id,
            worker=self.worker,
            target=config.target.label,
            record=record,
            events=environment.events if environment is not None else None,
            begin=self.sink.begin if self.sink is not None else None,
        )
        self.workloads: list[WorkloadSpec] = list(config.workloads)
        self.weights = [w.weight for w in self.workloads]
        self.factories = {
            w.name: PromptFactory(w, config.seed, f"workloads[{i}].prompt") for i, w in enumerate(self.workloads)
        }
        self.phase: PhaseCommand | None = None
        self.phase_started = time.monotonic()
        self.open_units = gevent.pool.Group()
        self._users = 0
        self._stopping = False  # a graceful stop began: send nothing new
        self._draining = False  # the run is draining: schedule nothing new, let what was scheduled finish

    # -------------------------------------------------------------- life cycle

    def start(self) -> WorkerRuntime:
        # Everything loaded so far (Locust, pydantic, the corpus, datasets) lives for the whole
        # run: out of the collector's sight, a full collection scans only what traffic creates,
        # instead of stalling the loop for tens of milliseconds (which the self-check would flag).
        gc.collect()
        gc.freeze()
        if self.sink is not None:
            self.sink.start()
            self.sampler = WorkerSampler(
                self.sink.client,
                self.sink.keys.samples,
                self.load_state,
                self.config.record.sample_interval,
                self.worker,
            ).start()
        return self

    def begin_stop(self) -> None:
        """The runner is stopping (Locust ``test_stopping``): dispatch and queued units send nothing new."""
        self._stopping = True

    def resume(self) -> None:
        """Users start again (Locust ``test_start``, or a new phase)."""
        self._stopping = False
        self._draining = False

    def drain(self) -> None:
        """The master's ``finishline_drain``: schedule nothing new (the dispatcher stops, closed users
        start no new unit); units in flight, and those queued in the client, finish. The phase
        stays the current one, so their records keep its name."""
        self._draining = True
        log.info("worker %s: draining", self.worker)

    def stop_traffic(self, grace: float | None = None) -> None:
        """Let open-loop units in flight finish within ``grace`` seconds (default: the environment's
        ``stop_timeout``, which the master sets to the run's drain timeout, 0 when forced), then
        stop the rest (each records itself as cancelled)."""
        self._stopping = True
        if grace is None:
            grace = float(getattr(self.environment, "stop_timeout", 0.0) or 0.0)
        if grace > 0 and len(self.open_units):
            self.open_units.join(timeout=grace)
        self.open_units.kill(block=True, timeout=10)

    def progress(self) -> WorkerProgress:
        """How far this worker got: requests begun, records sent, queued and dropped."""
        sink = self.sink
        return WorkerProgress(
            worker=self.worker,
            begun=self.requester.counters.requests,
            sent=sink.sent if sink is not None else 0,
            pending=sink.pending if sink is not None else 0,
            dropped=sink.dropped if sink is not None else 0,
        )

    def close(self) -> None:
        """Stop everything and flush every record to Redis."""
        self.stop_traffic(grace=0.0)
        if self.sampler is not None:
            self.sampler.stop()
        if self.sink is not None:
            self.sink.close()
        self.client.close()
        gc.unfreeze()  # what the run kept alive may be collected again (tests run many workers)

    def set_phase(self, phase: PhaseCommand) -> None:
        self.phase = phase
        self.phase_started = time.monotonic()
        self._stopping = False
        self._draining = False
        self.requester.phase = phase.name
        self.requester.budget.set(phase.name, phase.requests)
        log.info("worker %s: phase %s (%s)", self.worker, phase.name, phase.mode)

    def load_state(self) -> LoadState:
        phase = self.phase
        target = None
        if phase is not None and phase.mode == "open" and phase.replay is None and not self._draining:
            target = rate_at(phase.arrival, phase.worker_rate, time.monotonic() - self.phase_started)
        runner = getattr(self.environment, "runner", None)
        users = runner.user_count if runner is not None else self._users
        counters = self.requester.counters
        return LoadState(
            phase=phase.name if phase else "",
            users=users,
            target_rate=target,
            dispatched=counters.units,
            in_flight=counters.in_flight,
            budget_left=self.requester.budget.left(phase.name) if phase is not None else None,
        )

    # -------------------------------------------------------------- traffic

    @property
    def worker_index(self) -> int:
        """Locust's index of this worker (known once the master acknowledged it): seeds differ per
        worker, so two workers never send the same prompts, and a rerun sends the same again."""
        index = getattr(getattr(self.environment, "runner", None), "worker_index", -1)
        return index if isinstance(index, int) and index >= 0 else self._worker_index

    def user_rng(self, user_index: int) -> random.Random:
        return random.Random(f"{self.config.seed}:{self.worker_index}:user:{user_index}")

    def pick(self, rng: random.Random) -> WorkloadSpec:
        if len(self.workloads) == 1:
            return self.workloads[0]
        return rng.choices(self.workloads, weights=self.weights)[0]

    def sending(self, mode: str) -> PhaseCommand | None:
        """The current phase if users of ``mode`` send in it now: it is of that mode and the worker
        is neither draining nor stopping. A user of the other role idles meanwhile (between a
        phase message and the spawn message that replaces it, and during the drain)."""
        phase = self.phase
        if phase is None or phase.mode != mode or self._draining or self._stopping:
            return None
        if self.requester.budget.left(phase.name) == 0:  # its share of requests is spent: idle
            return None
        return phase

    def closed_iteration(self, rng: random.Random, user_id: int) -> tuple[bool, float]:
        """One unit of a closed-loop virtual user: sent as soon as the previous one ended.
        Returns whether it succeeded and how long it took (seconds)."""
        workload = self.pick(rng)
        now = time.monotonic()
        # the phase it is scheduled in, whatever happens next
        try:
            ok = run_unit(
                self.requester,
                self.factories[workload.name],
                Scheduling(workload, rng, now, now, user_id, self.requester.phase),
            )
        except BudgetSpent:  # another user took the phase's last ticket (or a session's next turn found none)
            return True, 0.0
        return ok, time.monotonic() - now

    def _halted(self, phase: PhaseCommand) -> bool:
        return self.phase is not phase or self._stopping or self._draining

    def _wait_until(self, when: float, phase: PhaseCommand) -> bool:
        """Sleep until ``when`` (monotonic s); False when something halted the phase meanwhile."""
        if self._halted(phase):
            return False
        delay = when - time.monotonic()
        while delay > 0:
            gevent.sleep(min(delay, 0.25))
            if self._halted(phase):
                return False
            delay = when - time.monotonic()
        return True

    def dispatch(self, phase: PhaseCommand) -> None:
        """Run this worker's open-loop schedule while ``phase`` is current and nothing halts it
        (a stop, the drain): the arrival process's, or the trace's in a replay."""
        if phase.replay is not None:
            self._replay(phase, phase.replay)
            return
        rng = random.Random(f"{self.config.seed}:{self.worker_index}:dispatch:{phase.name}")
        slots = gevent.lock.BoundedSemaphore(phase.worker_max_concurrency)
        start = time.monotonic()
        for when in schedule(phase.arrival, phase.worker_rate, rng, start):
            if not self._wait_until(when, phase):
                return
            workload = self.pick(rng)
            unit = Scheduling(workload, random.Random(rng.random()), when, when, None, phase.name)
            try:
                self.requester.admit(unit)  # a ticket now: the schedule stops where the phase's share ends
            except BudgetSpent:
                return
            self.open_units.spawn(self._open_unit, unit, slots)

    def _replay(self, phase: PhaseCommand, replay: ReplayCommand) -> None:
        """Send this worker's share of the trace's rows, each at its time after the replay's origin
        (the same instant in every worker); a row sent late says so in its dispatch delay.

        Each unit starts ``REPLAY_AHEAD`` before its row is due, makes its prompt and body, and
        waits for the exact time (``Requester.send``): what it costs to wake a greenlet and make a
        long prompt is not added to the trace's schedule."""
        factory = self.factories[replay.workload]
        assert factory.trace is not None, "the scenario names a workload with a trace prompt source"
        workload = factory.workload
        times = [row.time for row in factory.trace]
        rng = random.Random(f"{self.config.seed}:{self.worker_index}:replay:{phase.name}")
        slots = gevent.lock.BoundedSemaphore(phase.worker_max_concurrency)
        origin = replay.origin_monotonic()
        share = self.worker_index % phase.worker_count
        if origin - time.monotonic() > 0.1:  # time to spare: the first rows find connections open
            self.client.warm(min(REPLAY_CONNECTIONS, phase.worker_max_concurrency))
        for offset, row in replay_schedule(times, replay, share, phase.worker_count):
            when = origin + offset
            if not self._wait_until(when - REPLAY_AHEAD, phase):
                return
            unit = Scheduling(workload, random.Random(rng.random()), when, when, None, phase.name, row=row)
            self.open_units.spawn(self._open_unit, unit, slots)
        while not self._halted(phase):  # the schedule is done: wait for the phase to end
            gevent.sleep(0.25)

    def _open_unit(self, unit: Scheduling, slots: gevent.lock.BoundedSemaphore) -> None:
        with slots:
            if self._stopping:  # still queued when the run stopped: never sent
                return
            unit.started = max(time.monotonic(), unit.scheduled)  # it leaves the client queue (a replay's early)
            try:
                run_unit(self.requester, self.factories[unit.workload.name], unit)
            except gevent.GreenletExit:
                raise
            except BudgetSpent:  # a session's later turn or a chain's later step found none left
                pass
            except Exception:  # a bug must not stop the schedule; it is logged with its traceback
                log.exception("open-loop unit of %s failed", unit.workload.name)
