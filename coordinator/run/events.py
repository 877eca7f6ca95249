"""Run events: the seam features hook into (live metrics, Grafana annotations, container stats).

Locust-style hooks (``locust/event.py``) without importing Locust, since the coordinator is
not gevent-patched: each hook fires one typed event object, and its listeners receive that
object. A listener that raises is reported on stderr and the run goes on (a broken add-on
must not cost the measurements).

Usage::

    def on_phase_end(event: PhaseEnded) -> None:
        print(event.step.name, event.ended - event.started)

    ctx.events.phase_end.add_listener(on_phase_end)
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from coordinator.plan.steps import ExternalStep, LocustStep
from loadgen.records import RequestRecord

if TYPE_CHECKING:  # the context holds the events; the events carry the context
    from coordinator.run.context import RunContext

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class RunStarted:
    """Services started, target up, extensions attached; no traffic yet."""

    ctx: RunContext


@dataclass(frozen=True, slots=True)
class PhaseStarted:
    """A step of the plan began (monotonic ``started``, the master's own clock for Locust steps)."""

    ctx: RunContext
    step: LocustStep | ExternalStep
    started: float


@dataclass(frozen=True, slots=True)
class PhaseEnded:
    """A step of the plan ended (monotonic seconds)."""

    ctx: RunContext
    step: LocustStep | ExternalStep
    started: float
    ended: float


@dataclass(frozen=True, slots=True)
class RecordsCollected:
    """A batch of records the collector has just written to the run directory (collector thread)."""

    ctx: RunContext
    records: Sequence[RequestRecord]


@dataclass(frozen=True, slots=True)
class StepProgress:
    """A step that does long work of its own (a cold start's starts, a sweep's levels) has done
    ``done`` of ``total``; ``left_s``: its estimate of the time left (None before it can tell),
    an upper bound when ``at_most`` (an automatic sweep stops at the knee, often well before)."""

    ctx: RunContext
    step: str
    done: int
    total: int
    message: str
    left_s: float | None = None
    at_most: bool = False


@dataclass(frozen=True, slots=True)
class RunEnded:
    """Results are written (``summary`` is the written summary, None when none could be);
    fired before the run's add-ons, target and Redis are stopped."""

    ctx: RunContext
    status: str
    summary: Any


class EventHook(Generic[E]):
    """``hook.add_listener(fn)``; ``hook.fire(event)`` calls every listener with it, in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[Callable[[E], object]] = []

    def add_listener(self, listener: Callable[[E], object]) -> Callable[[E], object]:
        self._listeners.append(listener)
        return listener

    def remove_listener(self, listener: Callable[[E], object]) -> None:
        self._listeners.remove(listener)

    def fire(self, event: E) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - one broken listener must not end the run
                print(f"finishline: listener of {self.name} failed:", file=sys.stderr)
                traceback.print_exc()


class RunEvents:
    """Every hook of a run, in the order they fire."""

    run_start: EventHook[RunStarted]
    """Fired once services and the target are up and extensions are attached, before any traffic."""

    phase_start: EventHook[PhaseStarted]
    """Fired when each step of the plan begins."""

    phase_end: EventHook[PhaseEnded]
    """Fired when each step of the plan ends (also when the run is interrupted mid-step)."""

    records: EventHook[RecordsCollected]
    """Fired from the collector thread for each batch of records written; listeners must be quick."""

    step_progress: EventHook[StepProgress]
    """Fired by a step running long work of its own as each part of it ends (the console shows it)."""

    run_end: EventHook[RunEnded]
    """Fired once results are written, before the add-ons, the target and Redis are stopped."""

    def __init__(self) -> None:
        self.run_start = EventHook("run_start")
        self.phase_start = EventHook("phase_start")
        self.phase_end = EventHook("phase_end")
        self.records = EventHook("records")
        self.step_progress = EventHook("step_progress")
        self.run_end = EventHook("run_end")
