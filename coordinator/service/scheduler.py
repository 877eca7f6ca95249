"""The scheduler: once a second, each schedule whose time has come submits its scenario through
:func:`~coordinator.service.submission.submit_scenario`, the one way into the queue, with the
schedule as the run's ``source``.

A firing whose schedule's previous run is still queued or running is skipped (a soak must not
overlap the last one: they would share the target and measure each other). Every firing is
recorded in the schedule's history: the run it started, the run it was skipped for, or why it
was missed or rejected. Firings while the service was down follow
:func:`~coordinator.service.schedules.plan_firings`. Each look is synchronous, in the event loop,
so the API's changes to a schedule (pause, delete) never interleave with a firing.
"""

from __future__ import annotations

import logging

from coordinator.service.access import AllowList
from coordinator.service.models import ServiceRun
from coordinator.service.queue import RunQueue
from coordinator.service.schedules import (
    GRACE_S,
    SOURCE,
    Firing,
    FiringOutcome,
    Schedule,
    ScheduleStore,
    local_iso,
    plan_firings,
)
from coordinator.service.submission import Rejected, submit_scenario

log = logging.getLogger("finishline.service")


class Scheduler:
    def __init__(self, schedules: ScheduleStore, queue: RunQueue, allow: AllowList, grace_s: float = GRACE_S) -> None:
        self.schedules = schedules
        self.queue = queue
        self.allow = allow
        self.grace_s = grace_s

    def tick(self, now: float) -> None:
        """Handle every firing due by ``now`` of every schedule not paused."""
        for schedule in self.schedules.all():
            if not schedule.paused:
                self._handle(schedule, now)

    def previous_run(self, schedule: Schedule) -> ServiceRun | None:
        """The last run the schedule started (None if none, or it is gone)."""
        for firing in self.schedules.firings(schedule.name):
            if firing.outcome is FiringOutcome.STARTED and firing.run is not None:
                return self.queue.store.get(firing.run)
        return None

    def _handle(self, schedule: Schedule, now: float) -> None:
        plan = plan_firings(schedule.cron, schedule.timezone, schedule.handled_until, now, self.grace_s)
        if plan.handled_until == schedule.handled_until:
            return
        firings = []
        if plan.missed:
            first, last = plan.missed[0], plan.missed[-1]
            span = local_iso(first, schedule.timezone)
            if last != first:
                span += f" to {local_iso(last, schedule.timezone)}"
            count = f"{plan.missed_count}" if plan.exact else f"at least {plan.missed_count}"
            note = f"{count} firing(s) missed while the service was down ({span})"
            firings.append(Firing(due=last, at=now, outcome=FiringOutcome.MISSED, note=note))
            log.info("schedule %s: %s", schedule.name, note)
        if plan.run is not None:
            firings.append(self._fire(schedule, plan.run, now))
        schedule.handled_until = plan.handled_until
        self.schedules.record(schedule, firings)

    def _fire(self, schedule: Schedule, due: float, now: float) -> Firing:
        previous = self.previous_run(schedule)
        if previous is not None and not previous.status.finished:
            note = f"previous run {previous.id} still {previous.status.value}"
            log.info("schedule %s: firing skipped, %s", schedule.name, note)
            return Firing(due=due, at=now, outcome=FiringOutcome.SKIPPED, run=previous.id, note=note)
        try:
            run = submit_scenario(self.queue, self.allow, schedule.scenario, source=SOURCE.format(name=schedule.name))
        except Rejected as exc:
            note = f"{exc.field}: {exc.error}" if exc.field else exc.error
            log.warning("schedule %s: firing rejected, %s", schedule.name, note)
            return Firing(due=due, at=now, outcome=FiringOutcome.REJECTED, note=note)
        log.info("schedule %s: run %s submitted", schedule.name, run.id)
        return Firing(due=due, at=now, outcome=FiringOutcome.STARTED, run=run.id)
