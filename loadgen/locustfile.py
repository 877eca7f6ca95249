"""The file master and workers load with ``locust -f loadgen/locustfile.py``.

Workers (and a stand-alone local runner) read ``FINISHLINE_WORKER_CONFIG`` at init, start the
record sink and the sampler, and listen for the ``finishline_phase`` message. The master only
relays phases: it sends ``PhaseCommand`` payloads with
``runner.send_message("finishline_phase", phase.model_dump(mode="json"))`` and then starts
``users`` users (closed phase) or ``worker_count`` users, one per worker (open phase).
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import gevent
from locust import User, events, task
from locust.env import Environment
from locust.runners import MasterRunner

from loadgen.config import PHASE_MESSAGE, PhaseCommand, WorkerConfig
from loadgen.spawn_cost import compute_locust_defaults_once
from loadgen.worker import WorkerRuntime

compute_locust_defaults_once()

log = logging.getLogger(__name__)

_RUNTIME_ATTR = "finishline_runtime"


def runtime_of(environment: Environment) -> WorkerRuntime | None:
    return getattr(environment, _RUNTIME_ATTR, None)


def install(environment: Environment, runtime: WorkerRuntime) -> WorkerRuntime:
    """Attach a runtime to a Locust environment and listen for phases (also used by tests)."""
    setattr(environment, _RUNTIME_ATTR, runtime)
    runner = environment.runner
    if runner is not None and hasattr(runner, "register_message"):

        def on_phase(msg: Any, **_: Any) -> None:
            runtime.set_phase(PhaseCommand.model_validate(msg.data))

        runner.register_message(PHASE_MESSAGE, on_phase)
    environment.events.test_start.add_listener(lambda **_: runtime.resume())
    environment.events.test_stopping.add_listener(lambda **_: runtime.begin_stop())
    environment.events.test_stop.add_listener(lambda **_: runtime.stop_traffic())
    return runtime.start()


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner) or runtime_of(environment) is not None:
        return
    config = WorkerConfig.load()
    install(environment, WorkerRuntime(config, environment))


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    runtime = runtime_of(environment)
    if runtime is not None:
        runtime.close()  # flushes every record before the process exits


_user_numbers = itertools.count(1)


class LLMUser(User):
    """A closed-loop virtual user, or in an open phase the worker's dispatcher."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.number = next(_user_numbers)
        self.runtime = runtime_of(environment)
        self.rng = self.runtime.user_rng(self.number) if self.runtime else None

    def wait_time(self) -> float:
        phase = self.runtime.phase if self.runtime else None
        return phase.think_time if phase is not None and phase.mode == "closed" else 0.0

    @task
    def send(self) -> None:
        runtime = self.runtime
        if runtime is None:
            raise RuntimeError("finishline runtime missing: FINISHLINE_WORKER_CONFIG was not loaded")
        phase = runtime.phase
        if phase is None:
            gevent.sleep(0.1)  # no phase yet: the master sends it before starting users
        elif phase.mode == "open":
            runtime.dispatch(self, phase)
        else:
            runtime.closed_iteration(self.rng, self.number)
