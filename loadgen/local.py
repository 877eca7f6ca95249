"""Running finishline's Locust users in this process, without a master: tests and benchmarks.

The same user classes, dispatcher, runtime and messages as a distributed run; only the runner
is Locust's ``LocalRunner``, which delivers ``finishline_phase`` and ``finishline_drain`` to
itself.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import gevent
from locust.env import Environment
from locust.event import Events

from loadgen.config import DRAIN_MESSAGE, PHASE_MESSAGE, PhaseCommand, WorkerConfig
from loadgen.records import RequestRecord
from loadgen.users import USER_CLASSES, PhaseUsersDispatcher, classes_for
from loadgen.worker import WorkerRuntime, install


class LocalWorker:
    """One worker's users on a local runner. ``record=None`` ships records to the config's Redis."""

    def __init__(
        self, config: WorkerConfig, record: Callable[[RequestRecord], None] | None = None, stop_timeout: float = 0.0
    ) -> None:
        # stop_timeout: how long a stop lets requests in flight finish (a run's drain_timeout)
        self.environment = Environment(
            user_classes=list(USER_CLASSES),
            events=Events(),
            stop_timeout=stop_timeout,
            dispatcher_class=PhaseUsersDispatcher,
        )
        self.runner = self.environment.create_local_runner()
        self.runtime = install(self.environment, WorkerRuntime(config, self.environment, record=record))

    def start(self, phase: PhaseCommand, spawn_rate: float | None = None) -> None:
        """Send the phase message, then start its users (replacing those of the other role), as the master does."""
        self.runner.send_message(PHASE_MESSAGE, phase.model_dump(mode="json"))
        users = phase.users if phase.mode == "closed" else 1
        rate = spawn_rate or max(users, 1) * 100.0
        self.runner.start(users, spawn_rate=rate, wait=False, user_classes=classes_for(phase.mode))

    def drain(self) -> None:
        """The end of a run: schedule nothing new, let what was scheduled finish."""
        self.runner.send_message(DRAIN_MESSAGE)

    def run_phase(self, phase: PhaseCommand, seconds: float, spawn_rate: float | None = None) -> None:
        """Start the phase, let it run ``seconds``, stop the users."""
        self.start(phase, spawn_rate)
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
