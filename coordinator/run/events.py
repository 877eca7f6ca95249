"""Run events: the seam other features hook into (live metrics, Grafana annotations, Docker stats).

Locust-style hooks, without importing Locust: the coordinator process is not gevent-patched.
A listener that raises is reported on stderr and the run goes on (a broken add-on must not
cost the measurements).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import Any


class EventHook:
    """``hook.add_listener(fn)``; ``hook.fire(**kwargs)`` calls every listener in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[Callable[..., Any]] = []

    def add_listener(self, listener: Callable[..., Any]) -> Callable[..., Any]:
        self._listeners.append(listener)
        return listener

    def remove_listener(self, listener: Callable[..., Any]) -> None:
        self._listeners.remove(listener)

    def fire(self, **kwargs: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(**kwargs)
            except Exception:  # noqa: BLE001 - one broken listener must not end the run
                print(f"finishline: listener of {self.name} failed:", file=sys.stderr)
                traceback.print_exc()


class RunEvents:
    """Every hook of a run, with the keyword arguments each listener receives."""

    def __init__(self) -> None:
        # ctx: RunContext — services started, target up, before any traffic
        self.run_start = EventHook("run_start")
        # ctx, step (plan.LocustStep | plan.ExternalStep), started (monotonic s)
        self.phase_start = EventHook("phase_start")
        # ctx, step, started, ended (monotonic s)
        self.phase_end = EventHook("phase_end")
        # ctx, records (list[RequestRecord]) — each batch the collector wrote (collector thread: be quick)
        self.records = EventHook("records")
        # ctx, status (results.status.RunStatus: complete or partial), summary (results.summary.Summary | None)
        # — before teardown
        self.run_end = EventHook("run_end")
