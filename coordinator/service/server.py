"""The service's route table (what aiohttp routes and what the OpenAPI document says), the
application, the task that looks over the queue twice a second and the scheduler's, once a second."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from functools import cache
from importlib.metadata import version
from typing import Any

import redis
from aiohttp import web

from coordinator.compare.result import Comparison
from coordinator.results.summary import Summary
from coordinator.service import app as api
from coordinator.service import schedule_api as sched
from coordinator.service.models import BaselineInfo, BaselineList, Health, RunList, RunView, SaveBaseline
from coordinator.service.openapi import Param, Route, document
from coordinator.service.scheduler import Scheduler
from coordinator.service.schedules import ScheduleList, ScheduleSpec, ScheduleStore, ScheduleView

WATCH_INTERVAL_S = 0.5
SCHEDULE_INTERVAL_S = 1.0
MAX_BODY = 8 * 1024 * 1024  # a scenario or a baseline file to import
RUN_ID = Param("id", "path", "the run's id")
SCHEDULE = Param("name", "path", "the schedule's name")
SCENARIO_BODY = {
    "application/yaml": {"schema": {"type": "string", "description": "a scenario (docs/scenario.md)"}},
    "application/json": {"schema": {"type": "object", "description": "a scenario (docs/scenario.schema.json)"}},
}


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


ROUTES = [
    Route("GET", "/health", api.health, "the service answers (no token needed)", answer=Health, public=True),
    Route("GET", "/openapi.json", openapi, "this document"),
    Route(
        "POST",
        "/runs",
        api.submit,
        "submit a scenario (YAML or JSON); it waits in the queue until its target is free",
        status=201,
        answer=RunView,
        body=SCENARIO_BODY,
        errors=(403, 422),
    ),
    Route("GET", "/runs", api.list_runs, "every run, oldest first", answer=RunList),
    Route(
        "GET",
        "/runs/{id}",
        api.show_run,
        "a run: status, queue position, live figures",
        answer=RunView,
        params=(RUN_ID,),
        errors=(404,),
    ),
    Route(
        "POST",
        "/runs/{id}/cancel",
        api.cancel,
        "cancel: a queued run leaves the queue, a running one is interrupted (it ends partial, exit 130)",
        status=202,
        answer=RunView,
        params=(RUN_ID,),
        errors=(404, 409),
    ),
    Route(
        "GET",
        "/runs/{id}/summary",
        api.summary,
        "the run's summary.json",
        answer=Summary,
        params=(RUN_ID,),
        errors=(404, 409),
    ),
    Route(
        "GET",
        "/runs/{id}/report",
        api.report,
        "the run's report.html",
        answer="text/html",
        params=(RUN_ID,),
        errors=(404, 409),
    ),
    Route(
        "GET",
        "/runs/{id}/records",
        api.records,
        "the run's records.jsonl.gz",
        answer="application/gzip",
        params=(RUN_ID,),
        errors=(404, 409),
    ),
    Route(
        "GET",
        "/runs/{id}/compare",
        api.compare,
        "the run compared with a baseline (the JSON of `finishline compare --format json`)",
        answer=Comparison,
        params=(
            RUN_ID,
            Param("baseline", "query", "the baseline's name, or 'previous': the schedule's previous complete run"),
        ),
        errors=(404, 409, 422),
    ),
    Route("GET", "/baselines", api.list_baselines, "every baseline in the service's store", answer=BaselineList),
    Route(
        "POST",
        "/baselines",
        api.save_baseline,
        "save a finished run as a baseline",
        status=201,
        answer=BaselineInfo,
        body_model=SaveBaseline,
        errors=(404, 409, 422),
    ),
    Route(
        "POST",
        "/baselines/import",
        api.import_baseline,
        "import another tool's results file (the body) as a baseline",
        status=201,
        answer=BaselineInfo,
        body={"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        params=(
            Param("name", "query", "the baseline's name"),
            Param(
                "format",
                "query",
                "the file's format; told from its content when not given",
                False,
                ("guidellm", "vllm", "aiperf", "card"),
            ),
        ),
        errors=(409, 422),
    ),
    Route(
        "POST",
        "/schedules",
        sched.create_schedule,
        "make a schedule: the scenario is checked now, and submitted at each time of the cron expression",
        status=201,
        answer=ScheduleView,
        body_model=ScheduleSpec,
        errors=(403, 409, 422),
    ),
    Route("GET", "/schedules", sched.list_schedules, "every schedule, by name", answer=ScheduleList),
    Route(
        "GET",
        "/schedules/{name}",
        sched.show_schedule,
        "a schedule: its next firing and its latest firings",
        answer=ScheduleView,
        params=(SCHEDULE,),
        errors=(404,),
    ),
    Route(
        "POST",
        "/schedules/{name}/pause",
        sched.pause_schedule,
        "pause: no firing until it is resumed",
        answer=ScheduleView,
        params=(SCHEDULE,),
        errors=(404,),
    ),
    Route(
        "POST",
        "/schedules/{name}/resume",
        sched.resume_schedule,
        "resume: the next firing is the first after now (none is made up for)",
        answer=ScheduleView,
        params=(SCHEDULE,),
        errors=(404,),
    ),
    Route(
        "DELETE",
        "/schedules/{name}",
        sched.delete_schedule,
        "delete a schedule and its history (the runs it started stay)",
        status=204,
        params=(SCHEDULE,),
        errors=(404,),
    ),
]


@cache
def openapi_document() -> dict[str, Any]:
    return document(ROUTES, version("finishline"))


def openapi_json() -> str:
    """The document as ``docs/openapi.json`` keeps it (``finishline serve --openapi``)."""
    return json.dumps(openapi_document(), indent=2) + "\n"


async def _watch(app: web.Application) -> AsyncIterator[None]:
    """The queue's watch, on a thread (a recovery drains a run's Redis): first taking up the runs
    a previous service left, then twice a second."""
    queue = app[api.SERVICE].queue

    async def loop() -> None:
        look = queue.adopt
        while True:
            try:
                await asyncio.to_thread(look)
            except (redis.RedisError, OSError):  # Redis away for a moment: the next look tries again
                api.log.exception("watching the runs failed; trying again")
            look = queue.watch
            await asyncio.sleep(WATCH_INTERVAL_S)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _schedule(app: web.Application) -> AsyncIterator[None]:
    """The scheduler, after the queue has taken up its runs again (so a previous run's state is current)."""
    service = app[api.SERVICE]
    scheduler = Scheduler(ScheduleStore(service.queue.store.client), service.queue, service.allow)

    async def loop() -> None:
        while True:
            try:
                await asyncio.to_thread(scheduler.tick, time.time())  # it submits: the queue's lock
            except (redis.RedisError, OSError):  # as for watching: the next look tries again
                api.log.exception("firing the schedules failed; trying again")
            await asyncio.sleep(SCHEDULE_INTERVAL_S)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def make_app(service: api.Service) -> web.Application:
    app = web.Application(middlewares=[api.guard], client_max_size=MAX_BODY)
    app[api.SERVICE] = service
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    app.cleanup_ctx.append(_watch)
    app.cleanup_ctx.append(_schedule)
    return app
