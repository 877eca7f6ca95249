"""``workers.json``: which worker ran where, and the report's table of each worker's load and health.

Each worker that joined the run says who it is (``loadgen.config.WorkerHello``: host, pid,
container, finishline version); the run adds where it came from (local, remote, container),
when it joined and when it was lost, and at the end how many records it sent. The report shows
one row per worker with its client health from the self-check (CPU, event-loop lag).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from coordinator.results.files import write_atomic
from coordinator.results.selfcheck import WorkerHealth

WORKERS_FILE = "workers.json"


class WorkerSource(StrEnum):
    LOCAL = "local"  # a process the run started on this machine
    REMOTE = "remote"  # started elsewhere with `finishline worker --master HOST:PORT`
    CONTAINER = "container"  # started by a container launcher


class WorkerEntry(BaseModel):
    """One worker of a run, as it introduced itself and as the run saw it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="host:pid, the name on its records and samples")
    host: str
    pid: int
    container: str | None = None
    version: str = Field(description="the finishline it ran")
    python: str = ""
    source: WorkerSource
    joined_at: datetime = Field(description="when it applied the run's configuration (UTC)")
    lost_at: datetime | None = Field(
        default=None, description="when the run saw it gone mid-run (UTC); None: it was not"
    )
    records: int | None = Field(default=None, ge=0, description="records the collector received from it")
    clock_offset_s: float = Field(
        default=0.0,
        description="seconds added to its timestamps to put them on the coordinator's clock: 0 on the same "
        "kernel, else measured when it joined (coordinator.results.clocks)",
    )


_LIST = TypeAdapter(list[WorkerEntry])


def write_workers(run_dir: Path, workers: Sequence[WorkerEntry]) -> Path:
    return write_atomic(run_dir / WORKERS_FILE, _LIST.dump_json(list(workers), indent=2).decode() + "\n")


def read_workers(run_dir: Path) -> list[WorkerEntry]:
    """The run's workers; none for a run without the file (older runs, or one that ended before any joined)."""
    path = run_dir / WORKERS_FILE
    try:
        return _LIST.validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return []


def _num(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def workers_table(workers: Sequence[WorkerEntry], health: Mapping[str, WorkerHealth]) -> str:
    """One row per worker: where it ran, its version, its records, its client health, lost or not."""
    if not workers:
        return ""
    rows = []
    for w in workers:
        h = health.get(w.name)
        where = w.host + (f" (container {w.container})" if w.container else f" pid {w.pid}")
        lost = "–" if w.lost_at is None else f"lost {w.lost_at:%H:%M:%S} UTC"
        cells = [html.escape(w.name), html.escape(w.source.value), html.escape(where), html.escape(w.version)]
        numbers = [
            _num(w.records),
            _num(h.samples if h else None),
            _num(h.cpu_p90 if h else None),
            _num(h.cpu_max if h else None),
            _num(h.loop_lag_p99_ms if h else None),
            _num(h.loop_lag_max_ms if h else None),
        ]
        rows.append(
            "<tr>"
            + "".join(f'<td class="l">{c}</td>' for c in cells)
            + "".join(f"<td>{n}</td>" for n in numbers)
            + f'<td class="l">{html.escape(lost)}</td></tr>'
        )
    head = (
        '<tr><th class="l">worker</th><th class="l">source</th><th class="l">where</th><th class="l">finishline</th>'
        "<th>records</th><th>samples</th><th>CPU p90 %</th><th>CPU max %</th><th>loop lag p99 ms</th>"
        '<th>loop lag max ms</th><th class="l">lost</th></tr>'
    )
    return f"<div class='wrap'><table>{head}{''.join(rows)}</table></div>"
