"""The two roles a Locust user plays in finishline, a class each, and how a phase picks its role.

- ``ClosedLoopUser``: one virtual user of a closed phase. It sends a unit of traffic, waits the
  phase's think time, sends the next; after units that fail fast it backs off
  (:class:`loadgen.retry.FailureBackoff`), so a dead target is not hammered.
- ``OpenLoopDispatcher``: one per worker in an open phase. It runs the worker's arrival schedule
  (:meth:`loadgen.worker.WorkerRuntime.dispatch`) and never waits for replies.

Each class names the phase mode it serves in ``finishline_mode``; whoever starts users (the
master, or a :class:`loadgen.local.LocalWorker`) starts a phase's users with
``runner.start(n, rate, user_classes=classes_for(mode))``.

Locust's own dispatcher (2.47) does not replace users of a class left out of ``user_classes``:
it only spawns new users from the classes named, and a ramp-down removes the users spawned
last, whatever their class. Going from 8 closed users to an open phase of 2 workers would leave
2 closed users and no dispatcher. :class:`PhaseUsersDispatcher` (the environment's
``dispatcher_class``) therefore retires the users of every other class in the same dispatch:
each worker gets one spawn message that starts the new role's users and stops the old role's,
gracefully within ``stop_timeout`` (a closed user finishes its unit, a dispatcher returns at once).

Until then, and while the worker drains, a user whose role the current phase does not need
sends nothing: it waits ``IDLE_WAIT`` seconds at a time, in Locust's wait state, so that a
stop ends it at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from locust import User, task
from locust.dispatch import UsersDispatcher
from locust.env import Environment

from loadgen.retry import FailureBackoff
from loadgen.worker import WorkerRuntime, await_runtime

IDLE_WAIT = 0.1  # seconds between two looks at the phase while a user has nothing to send
RUNTIME_WAIT = 30.0  # seconds a user spawned before its worker's configuration arrived waits for it

_user_numbers = itertools.count(1)


def _runtime(environment: Environment) -> WorkerRuntime:
    runtime = await_runtime(environment, RUNTIME_WAIT)
    if runtime is None:
        raise RuntimeError("finishline runtime missing: the master's configuration never arrived")
    return runtime


class ClosedLoopUser(User):
    """A closed-loop virtual user: one unit at a time, the phase's think time between units."""

    finishline_mode = "closed"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.runtime = _runtime(environment)
        self.number = next(_user_numbers)  # the records' user_id; seeds the user's prompts
        self.rng = self.runtime.user_rng(self.number)
        self.backoff = FailureBackoff()

    def on_start(self) -> None:
        """Open this user's connection before its first unit is scheduled: a thousand users
        started together would otherwise each time their first request from before a connect
        that waits on all the others' (about 0.3 ms of CPU each), and every one would count as
        sent late. A connection the pool already holds is taken and given back as it is."""
        self.runtime.client.warm(1)

    def wait_time(self) -> float:
        phase = self.runtime.sending("closed")
        return IDLE_WAIT if phase is None else phase.think_time + self.backoff.wait()

    @task
    def send(self) -> None:
        if self.runtime.sending("closed") is not None:
            self.backoff.observe(*self.runtime.closed_iteration(self.rng, self.number))


class OpenLoopDispatcher(User):
    """A worker's open-loop dispatcher: runs the phase's schedule until the phase changes or the run drains."""

    finishline_mode = "open"
    # One per worker: Locust spawns exactly fixed_count users of the class, whatever user count a
    # start (or the web UI) asks for; the master sets it to its number of workers.
    fixed_count = 1

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.runtime = _runtime(environment)

    def wait_time(self) -> float:
        return 0.0 if self.runtime.sending("open") is not None else IDLE_WAIT

    @task
    def dispatch(self) -> None:
        phase = self.runtime.sending("open")
        if phase is not None:
            self.runtime.dispatch(phase)


USER_CLASSES: tuple[type[User], ...] = (ClosedLoopUser, OpenLoopDispatcher)


def mode_of(user_class: type[User]) -> str | None:
    """The phase mode a user class serves (``finishline_mode``), None for a class that is none of ours."""
    mode = getattr(user_class, "finishline_mode", None)
    return mode if isinstance(mode, str) else None


def classes_for(mode: str, user_classes: Iterable[type[User]] = USER_CLASSES) -> list[type[User]]:
    """The user classes among ``user_classes`` that serve phases of ``mode``."""
    chosen = [c for c in user_classes if mode_of(c) == mode]
    if not chosen:
        raise LookupError(f"no finishline user class serves {mode} phases")
    return chosen


class PhaseUsersDispatcher(UsersDispatcher):
    """Locust's dispatcher, except that a dispatch naming its user classes replaces the users of
    every other class in the same step (see the module docstring for why).

    A start that names no classes (Locust's web UI, the rebalancing after a worker is lost) takes
    :attr:`phase_classes`, the current phase's role, which the master sets when it announces a
    phase (one master, one runner: a class attribute is its state)."""

    phase_classes: list[type[User]] | None = None

    def new_dispatch(
        self, target_user_count: int, spawn_rate: float, user_classes: list[type[User]] | None = None
    ) -> None:
        if user_classes is None:
            user_classes = PhaseUsersDispatcher.phase_classes
        if user_classes is not None:
            keep = {c.__name__ for c in user_classes}
            # The users Locust counts per worker, and the list a ramp-down pops from: without the
            # retired classes, the dispatch spawns the new ones up to the target and the spawn
            # messages carry zero for the old ones (each worker stops them).
            self._active_users = [(node, name) for node, name in self._active_users if name in keep]
            for counts in self._users_on_workers.values():
                for name in counts:
                    if name not in keep:
                        counts[name] = 0
            self._try_dispatch_fixed = True  # fixed_count classes are topped up again
        super().new_dispatch(target_user_count, spawn_rate, user_classes)
