"""The API's schedule endpoints: make, list, show, pause, resume and delete schedules
(:mod:`coordinator.service.schedules`), with errors in :mod:`coordinator.service.app`'s one shape."""

from __future__ import annotations

import time

from aiohttp import web
from pydantic import ValidationError

from coordinator.service.app import SERVICE, json_response, log
from coordinator.service.schedules import (
    Schedule,
    ScheduleList,
    ScheduleSpec,
    ScheduleStore,
    ScheduleView,
    local_iso,
    next_fire,
)
from coordinator.service.submission import Rejected, check_scenario
from loadgen.errors import describe_validation_error

HISTORY = 50  # firings shown per schedule


def _store(request: web.Request) -> ScheduleStore:
    return ScheduleStore(request.app[SERVICE].queue.store.client)


def _view(store: ScheduleStore, schedule: Schedule, now: float) -> ScheduleView:
    upcoming = (
        None if schedule.paused else next_fire(schedule.cron, schedule.timezone, max(now, schedule.handled_until))
    )
    return ScheduleView(
        name=schedule.name,
        cron=schedule.cron,
        timezone=schedule.timezone,
        paused=schedule.paused,
        created_at=schedule.created_at,
        next_fire=upcoming,
        next_fire_local=None if upcoming is None else local_iso(upcoming, schedule.timezone),
        firings=store.firings(schedule.name, HISTORY),
    )


def _schedule(request: web.Request) -> Schedule:
    name = request.match_info["name"]
    schedule = _store(request).get(name)
    if schedule is None:
        raise Rejected(404, f"no schedule {name!r}", "name")
    return schedule


async def create_schedule(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        spec = ScheduleSpec.model_validate_json(await request.read())
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(p) for p in problem["loc"]) or "body"
        raise Rejected(422, describe_validation_error(exc), field) from None
    try:
        checked = check_scenario(service.queue.runs_dir, service.allow, spec.scenario)
    except Rejected as exc:  # its field is the scenario's: say it is inside this body's scenario
        field = "scenario" if exc.field in (None, "body") else f"scenario.{exc.field}"
        raise Rejected(exc.status, exc.error, field) from None
    now = time.time()
    schedule = Schedule(**spec.model_dump(), created_at=now, handled_until=now)
    store = _store(request)
    if not store.add(schedule):
        raise Rejected(409, f"a schedule {spec.name!r} exists; delete it first", "name")
    log.info("schedule %s made (%s, %s; scenario %s)", spec.name, spec.cron, spec.timezone, checked.name)
    return json_response(_view(store, schedule, now), 201)


async def list_schedules(request: web.Request) -> web.Response:
    store, now = _store(request), time.time()
    return json_response(ScheduleList(schedules=[_view(store, s, now) for s in store.all()]))


async def show_schedule(request: web.Request) -> web.Response:
    return json_response(_view(_store(request), _schedule(request), time.time()))


async def pause_schedule(request: web.Request) -> web.Response:
    schedule, store = _schedule(request), _store(request)
    schedule.paused = True
    store.put(schedule)
    log.info("schedule %s paused", schedule.name)
    return json_response(_view(store, schedule, time.time()))


async def resume_schedule(request: web.Request) -> web.Response:
    """Resume: firings while it was paused are not made up for; the next is the first after now."""
    schedule, store, now = _schedule(request), _store(request), time.time()
    if schedule.paused:
        schedule.paused, schedule.handled_until = False, now
        store.put(schedule)
        log.info("schedule %s resumed", schedule.name)
    return json_response(_view(store, schedule, now))


async def delete_schedule(request: web.Request) -> web.Response:
    schedule = _schedule(request)
    _store(request).delete(schedule.name)
    log.info("schedule %s deleted", schedule.name)
    return web.Response(status=204)
