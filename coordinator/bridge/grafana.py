"""``finishline grafana``: upload the dashboards and annotate runs through Grafana's HTTP API.

Uses ``grafana-client`` (the maintained successor of ``grafana-api``). Configured by a URL
(``--url`` or ``FINISHLINE_GRAFANA_URL``) and a service-account token read from an environment
variable (``FINISHLINE_GRAFANA_TOKEN`` unless ``--token-env`` names another): a token never
appears on a command line, in a log or in results. Without both, nothing is sent.

Annotations carry the tags ``finishline`` and the run id, which the dashboards' annotation
query shows: run start, each phase as a region, run end with its status.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import BaseModel, ConfigDict, Field

import dashboards
from coordinator.results.summary import read_summary
from coordinator.run.context import RunContext
from coordinator.run.events import PhaseEnded, PhaseStarted, RunEnded, RunStarted
from loadgen.errors import UserError

if TYPE_CHECKING:  # grafana_client is imported where it is used: every run loads this module (its
    # extension, attach_annotations) and most have no Grafana, so they need not pay its import
    from grafana_client.api import GrafanaApi

E = TypeVar("E")

DASHBOARD_DIR = dashboards.DASHBOARD_DIR
URL_ENV = "FINISHLINE_GRAFANA_URL"
TOKEN_ENV = "FINISHLINE_GRAFANA_TOKEN"
TAG = "finishline"


class GrafanaSettings(BaseModel):
    """Where Grafana is and which variable holds its token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://")
    token_env: str = Field(default=TOKEN_ENV, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    folder: str = Field(default="finishline", min_length=1)

    @classmethod
    def from_env(cls) -> GrafanaSettings | None:
        """Settings from the environment, or ``None`` when Grafana is not configured."""
        url = os.environ.get(URL_ENV)
        if not url or not os.environ.get(TOKEN_ENV):
            return None
        return cls(url=url)

    def connect(self) -> GrafanaApi:
        from grafana_client.api import GrafanaApi

        token = os.environ.get(self.token_env)
        if not token:
            raise UserError(f"grafana: environment variable {self.token_env} (the API token) is not set; export it")
        api: GrafanaApi = GrafanaApi.from_url(self.url, credential=token, timeout=10.0)  # from_url is unannotated
        return api


def folder_uid(api: GrafanaApi, title: str) -> str:
    """The folder's uid, created if missing (uid derived from the title)."""
    from grafana_client.client import GrafanaClientError

    uid = "".join(ch if ch.isalnum() else "-" for ch in title.lower())[:40]
    try:
        api.folder.get_folder(uid)
    except GrafanaClientError as exc:
        if getattr(exc, "status_code", None) != 404:
            raise
        api.folder.create_folder(title, uid=uid)
    return uid


def push_dashboards(api: GrafanaApi, folder: str, directory: Path = DASHBOARD_DIR) -> list[str]:
    """Upload every generated dashboard (overwriting the previous version); returns their uids."""
    uid = folder_uid(api, folder)
    pushed = []
    for path in sorted(directory.glob("*.json")):
        board: dict[str, Any] = json.loads(path.read_text())
        board.pop("id", None)
        api.dashboard.update_dashboard(
            {"dashboard": board, "folderUid": uid, "overwrite": True, "message": "finishline grafana push"}
        )
        pushed.append(board["uid"])
    return pushed


def annotate(api: GrafanaApi, run_id: str, text: str, kind: str, start_s: float, end_s: float | None = None) -> None:
    """One annotation (a region when ``end_s`` is given), tagged ``finishline``, the run and ``kind``."""
    api.annotations.add_annotation(
        time_from=int(start_s * 1000),
        time_to=int((end_s if end_s is not None else start_s) * 1000),
        tags=[TAG, run_id, kind],
        text=text,
    )


def run_events(run_dir: Path) -> tuple[str, list[tuple[str, str, float, float | None]]]:
    """The run id and (text, kind, start, end) annotations of a finished run directory.

    Phases are logged on the monotonic clock; a record's ``wall_time - scheduled`` gives the
    offset to wall-clock time, as both were taken by the same machine.
    """
    summary = read_summary(run_dir / "summary.json")
    run = summary.run
    run_id = run.id or run_dir.name
    offset = _wall_offset(run_dir / "records.jsonl.gz")
    events: list[tuple[str, str, float, float | None]] = []
    if run.started_wall is not None:
        events.append((f"run {run_id} started", "run_start", run.started_wall, None))
    if offset is not None:
        for phase in run.phases:
            end = None if phase.end is None else phase.end + offset
            events.append((f"phase {phase.name}", "phase", phase.start + offset, end))
        ends = [p.end for p in run.phases if p.end is not None]
        if ends:
            events.append((f"run {run_id} ended: {summary.status}", "run_end", max(ends) + offset, None))
    return run_id, events


def _wall_offset(records_path: Path) -> float | None:
    if not records_path.is_file():
        return None
    with gzip.open(records_path, "rb") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                return float(rec["wall_time"]) - float(rec["scheduled"])
    return None


def attach_annotations(ctx: RunContext, settings: GrafanaSettings | None = None) -> bool:
    """Annotate a live run at run_start, each phase (a region) and run_end, if Grafana is configured."""
    settings = settings or GrafanaSettings.from_env()
    if settings is None:
        return False
    api = settings.connect()
    run_id = ctx.run_id
    phase_started: dict[str, float] = {}

    def safe(fn: Callable[[E], None]) -> Callable[[E], None]:
        def call(event: E) -> None:
            try:
                fn(event)
            except Exception as exc:  # noqa: BLE001 - Grafana being down must not cost the run
                print(f"finishline: grafana annotation failed: {exc}", file=sys.stderr)

        return call

    def run_start(event: RunStarted) -> None:
        annotate(api, run_id, f"run {run_id} started", "run_start", time.time())

    def phase_start(event: PhaseStarted) -> None:
        phase_started[event.step.name] = time.time()

    def phase_end(event: PhaseEnded) -> None:
        now = time.time()
        began = phase_started.get(event.step.name, now - (event.ended - event.started))
        annotate(api, run_id, f"phase {event.step.name}", "phase", began, now)

    def run_end(event: RunEnded) -> None:
        annotate(api, run_id, f"run {run_id} ended: {event.status}", "run_end", time.time())

    ctx.events.run_start.add_listener(safe(run_start))
    ctx.events.phase_start.add_listener(phase_start)
    ctx.events.phase_end.add_listener(safe(phase_end))
    ctx.events.run_end.add_listener(safe(run_end))
    return True


@click.group("grafana", epilog="\b\nExample:\n  GRAFANA_TOKEN=... finishline grafana push --url http://127.0.0.1:3000")
def grafana() -> None:
    """Upload finishline's dashboards to Grafana and annotate runs."""


@grafana.command(
    "push",
    epilog="\b\nExample:\n  GRAFANA_TOKEN=... finishline grafana push --url http://127.0.0.1:3000 "
    "--run runs/quickstart-20261201-101500-ab12cd",
)
@click.option("--url", envvar=URL_ENV, default=None, help=f"Grafana base URL (or {URL_ENV}).")
@click.option("--token-env", default=TOKEN_ENV, show_default=True, help="Environment variable holding the API token.")
@click.option("--folder", default="finishline", show_default=True, help="Grafana folder of the dashboards.")
@click.option(
    "--run",
    "run_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Also annotate this finished run (its run directory) with run start, phases and run end.",
)
def push(url: str | None, token_env: str, folder: str, run_dir: Path | None) -> None:
    """Upload the dashboards (and a run's annotations) through the Grafana HTTP API."""
    if not url:
        raise UserError(f"grafana push: no Grafana URL; pass --url or set {URL_ENV}")
    settings = GrafanaSettings(url=url, token_env=token_env, folder=folder)
    api = settings.connect()
    with _reported(url):
        uids = push_dashboards(api, folder)
    click.echo(f"grafana: pushed {len(uids)} dashboards to {url} ({', '.join(uids)})")
    if run_dir is not None:
        summary_path = run_dir / "summary.json"
        if not summary_path.is_file():
            raise UserError(f"--run: {run_dir} has no summary.json; pass a finished run directory")
        run_id, events = run_events(run_dir)
        with _reported(url):
            for text, kind, start, end in events:
                annotate(api, run_id, text, kind, start, end)
        click.echo(f"grafana: wrote {len(events)} annotations for run {run_id}")


@contextmanager
def _reported(url: str) -> Iterator[None]:
    """Grafana down or refusing the request: one line naming the URL, not a traceback."""
    from grafana_client.client import GrafanaException

    try:
        yield
    except (GrafanaException, OSError) as exc:  # grafana-client lets connection errors (OSError) through
        raise UserError(f"grafana push: {url} failed: {exc}; check --url and the token") from None
