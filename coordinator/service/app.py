"""The service's HTTP API (aiohttp): the handlers, the token check and the
one shape of every error (``{"error": ..., "field": ...}``, a 4xx that names the field).

Handlers validate and answer; runs are started, watched and ended by the queue
(:mod:`coordinator.service.server` routes these and looks over the queue). Work that takes longer than a Redis round trip (a
comparison, saving or importing a baseline) runs in a thread, so the loop keeps answering.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from coordinator.baselines.commands import save_run
from coordinator.baselines.store import BaselineStore, check_name
from coordinator.service.access import AllowList, token_matches
from coordinator.service.live import live_figures
from coordinator.service.models import (
    BaselineInfo,
    BaselineList,
    Error,
    Health,
    RunList,
    RunState,
    SaveBaseline,
    ServiceRun,
)
from coordinator.service.queue import RunQueue
from coordinator.service.submission import Rejected, submit_scenario
from loadgen.errors import UserError, describe_validation_error

log = logging.getLogger("finishline.service")
PREVIOUS = "previous"  # baseline=previous: the previous complete run of the same schedule


@dataclass
class Service:
    queue: RunQueue
    allow: AllowList
    token: str
    baselines: Path

    @property
    def store(self) -> BaselineStore:
        return BaselineStore(self.baselines)


SERVICE = web.AppKey("service", Service)


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    """``model`` as the JSON answer (every endpoint answers a pydantic model, as the OpenAPI document says)."""
    return web.Response(text=model.model_dump_json(), status=status, content_type="application/json")


def _error(status: int, error: str, field: str | None = None) -> web.Response:
    return json_response(Error(error=error, field=field), status)


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """The token (but for /health), and every failure as a JSON error; nothing a request did
    half-way is kept (handlers change state only once they have checked everything)."""
    service = request.app[SERVICE]
    route = request.match_info.route.resource
    public = route is not None and route.canonical == "/health"
    if not public and not token_matches(request.headers.get("Authorization"), service.token):
        response = _error(401, "missing or wrong bearer token", "Authorization")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    try:
        answer: web.StreamResponse = await handler(request)
        return answer
    except Rejected as exc:
        return _error(exc.status, exc.error, exc.field)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason, None)
        raise
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return _error(500, "internal error; see the service's log")


def _run(request: web.Request) -> ServiceRun:
    run_id = request.match_info["id"]
    run = request.app[SERVICE].queue.store.get(run_id)
    if run is None:
        raise Rejected(404, f"no run {run_id!r}", "id")
    return run


def _finished_dir(run: ServiceRun) -> Path:
    if not run.status.finished or run.run_dir is None:
        raise Rejected(409, f"run {run.id} is {run.status.value}; its results come once it has ended", "id")
    return Path(run.run_dir)


# -- handlers -----------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    return json_response(Health(version=version("finishline")))


async def submit(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    text = await request.text()  # checked (an image looked up) and queued on a thread: the queue's lock
    run = await asyncio.to_thread(submit_scenario, service.queue, service.allow, text)
    log.info("run %s submitted (%s, target %s)", run.id, run.name, run.target)
    return json_response(service.queue.view(run), 201)


async def list_runs(request: web.Request) -> web.Response:
    queue = request.app[SERVICE].queue
    positions = queue.positions()
    return json_response(RunList(runs=[queue.view(run, positions) for run in queue.store.all()]))


async def show_run(request: web.Request) -> web.Response:
    queue = request.app[SERVICE].queue
    run = _run(request)
    view = queue.view(run)
    run_dir = queue.run_dir(run)
    if run.status is RunState.RUNNING and run_dir is not None:
        view.live = await asyncio.to_thread(live_figures, run_dir)
    return json_response(view)


async def cancel(request: web.Request) -> web.Response:
    queue = request.app[SERVICE].queue
    run = _run(request)
    if run.status.finished:
        raise Rejected(409, f"run {run.id} has already ended ({run.status.value})", "id")
    log.info("run %s cancelled", run.id)
    return json_response(queue.view(await asyncio.to_thread(queue.cancel, run)), 202)


def _file(run: ServiceRun, name: str, content_type: str) -> web.FileResponse:
    path = _finished_dir(run) / name
    if not path.is_file():
        raise Rejected(404, f"run {run.id} has no {name}", "id")
    return web.FileResponse(path, headers={"Content-Type": content_type})


async def summary(request: web.Request) -> web.StreamResponse:
    return _file(_run(request), "summary.json", "application/json")


async def report(request: web.Request) -> web.StreamResponse:
    return _file(_run(request), "report.html", "text/html")


async def records(request: web.Request) -> web.StreamResponse:
    return _file(_run(request), "records.jsonl.gz", "application/gzip")


def _compare(run_dir: Path, baseline: Path | str, store: Path) -> str:
    """The run against ``baseline``: a stored baseline's name (never a path the caller chose) or
    the run directory of an earlier run of this service."""
    from coordinator.compare.comparison import compare as compare_sides
    from coordinator.compare.render import render
    from coordinator.compare.sides import resolve
    from coordinator.compare.thresholds import read_thresholds

    other = baseline if isinstance(baseline, Path) else BaselineStore(store).get(baseline).path
    current, against = resolve(str(run_dir), store), resolve(str(other), store)
    return render(compare_sides(current, against, read_thresholds(None)), "json", current, against)


def previous_run(runs: list[ServiceRun], run: ServiceRun) -> ServiceRun | None:
    """The last complete run submitted before ``run`` by the same schedule (runs oldest first)."""
    earlier = [
        other
        for other in runs
        if other.source == run.source
        and other.id != run.id
        and other.submitted < run.submitted
        and other.status is RunState.COMPLETE
        and other.run_dir is not None
    ]
    return earlier[-1] if earlier else None


async def compare(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    run = _run(request)
    run_dir = _finished_dir(run)
    name = request.query.get("baseline", "")
    baseline: Path | str = name
    if name == PREVIOUS:
        if not run.source.startswith("schedule:"):
            raise Rejected(422, f"run {run.id} was not started by a schedule; baseline=previous needs one", "baseline")
        before = previous_run(service.queue.store.all(), run)
        if before is None or before.run_dir is None:
            raise Rejected(404, f"no complete run of {run.source} before run {run.id}", "baseline")
        baseline = Path(before.run_dir)
    try:
        if isinstance(baseline, str):
            check_name(baseline)
        page = await asyncio.to_thread(_compare, run_dir, baseline, service.baselines)
    except UserError as exc:
        raise Rejected(404 if "no baseline" in str(exc) else 422, str(exc), "baseline") from None
    return web.Response(text=page, content_type="application/json")


def _info(stored: Any) -> BaselineInfo:
    made = stored.baseline
    return BaselineInfo(
        name=made.name,
        description=made.description,
        tool=made.tool.value,
        steps=len(made.steps),
        created=made.created.isoformat(),
    )


async def list_baselines(request: web.Request) -> web.Response:
    stored = await asyncio.to_thread(request.app[SERVICE].store.all)
    return json_response(BaselineList(baselines=[_info(s) for s in stored]))


async def save_baseline(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        asked = SaveBaseline.model_validate_json(await request.read())
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise Rejected(
            422, describe_validation_error(exc), ".".join(str(p) for p in problem["loc"]) or "body"
        ) from None
    run = service.queue.store.get(asked.run)
    if run is None:
        raise Rejected(404, f"no run {asked.run!r}", "run")
    if not run.status.finished or run.run_dir is None:
        raise Rejected(409, f"run {run.id} is {run.status.value}; save it once it has ended", "run")
    try:
        check_name(asked.name)
        await asyncio.to_thread(
            save_run, Path(run.run_dir), asked.name, asked.description, service.baselines, force=asked.force
        )
    except UserError as exc:
        raise Rejected(409 if "exists" in str(exc) else 422, str(exc), "name") from None
    return json_response(_info(service.store.get(asked.name)), 201)


async def import_baseline(request: web.Request) -> web.Response:
    from coordinator.baselines.importers import import_file

    service = request.app[SERVICE]
    name, fmt = request.query.get("name", ""), request.query.get("format") or None
    try:
        check_name(name)
    except UserError as exc:
        raise Rejected(422, str(exc), "name") from None
    body = await request.read()
    uploads = service.queue.runs_dir / ".service" / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=uploads) as folder:
        path = Path(folder) / f"upload.{'yaml' if fmt == 'card' else 'json'}"
        path.write_bytes(body)
        try:
            imported = await asyncio.to_thread(import_file, path, fmt, None, name=name)
            await asyncio.to_thread(
                service.store.save, imported.baseline, files=imported.sources, samples=imported.samples
            )
        except UserError as exc:
            text = str(exc).replace(str(path), "body")
            raise Rejected(409 if "exists" in text else 422, text, "format" if "--format" in text else "body") from None
    return json_response(_info(service.store.get(name)), 201)
