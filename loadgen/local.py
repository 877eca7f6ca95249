"""Running finishline's Locust users in this process, without a master: tests and benchmarks.

The same user class, runtime and phase message as a distributed run; only the runner is
Locust's ``LocalRunner``, which delivers ``finishline_phase`` to itself.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import gevent
from locust.env import Environment
from locust.event import Events

from loadgen.config import PHASE_MESSAGE, PhaseCommand, WorkerConfig
from loadgen.locustfile import LLMUser, install
from loadgen.records import RequestRecord
from loadgen.worker import WorkerRuntime


class LocalWorker:
    """One worker's users on a local runner. ``record=None`` ships records to the config's Redis."""

    def __init__(
        self, config: WorkerConfig, record: Callable[[RequestRecord], None] | None = None, stop_timeout: float = 0.0
    ) -> None:
        # stop_timeout: how long a stop lets requests in flight finish (a run's drain_timeout)
        self.environment = Environment(user_classes=[LLMUser], events=Events(), stop_timeout=stop_timeout)
        self.runner = self.environment.create_local_runner()
        self.runtime = install(self.environment, WorkerRuntime(config, self.environment, record=record))

    def run_phase(self, phase: PhaseCommand, seconds: float, spawn_rate: float | None = None) -> None:
        """Send the phase message, start its users, let it run ``seconds``, stop the users."""
        self.runner.send_message(PHASE_MESSAGE, phase.model_dump(mode="json"))
        users = phase.users if phase.mode == "closed" else 1
        self.runner.start(users, spawn_rate=spawn_rate or max(users, 1) * 100.0, wait=False)
        gevent.sleep(seconds)
        self.runner.stop()

    def close(self) -> None:
        self.runner.quit()
        self.runtime.close()

    def __enter__(self) -> LocalWorker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
