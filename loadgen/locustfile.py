"""The file master and workers load with ``locust -f loadgen/locustfile.py``.

A worker asks the master for the run's configuration at init (``loadgen.joining``: hello,
configuration, configured), then starts the record sink and the sampler and follows the
master's messages (``loadgen.config``): the ``finishline_phase`` before each phase and
``finishline_drain`` at the end. A stand-alone local runner (``locust -f`` without a master)
reads ``FINISHLINE_WORKER_CONFIG`` instead (``WorkerConfig.load``). The master only
relays: it sends each ``PhaseCommand`` with
``runner.send_message("finishline_phase", phase.model_dump(mode="json"))`` and then starts the
phase's users, ``users`` closed-loop users (closed phase) or one dispatcher per worker (open
phase); the user classes, one per role, are in ``loadgen.users``.
"""

from __future__ import annotations

from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadgen.config import WorkerConfig
from loadgen.joining import join
from loadgen.spawn_cost import compute_locust_defaults_once
from loadgen.users import ClosedLoopUser, OpenLoopDispatcher
from loadgen.worker import WorkerRuntime, install, runtime_of

compute_locust_defaults_once()

__all__ = ["ClosedLoopUser", "OpenLoopDispatcher"]  # what Locust finds here: the user classes


def _on_init(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner) or runtime_of(environment) is not None:
        return
    if isinstance(environment.runner, WorkerRunner):
        join(environment)  # the runtime is installed when the master's configuration arrives
        return
    install(environment, WorkerRuntime(WorkerConfig.load(), environment))


def _on_quitting(environment: Environment, **_: Any) -> None:
    runtime = runtime_of(environment)
    if runtime is not None:
        runtime.close()  # flushes every record before the process exits


# Registered by a call, not as decorators: Locust's add_listener is unannotated, and as a
# decorator it would leave the two functions untyped.
events.init.add_listener(_on_init)
events.quitting.add_listener(_on_quitting)
