"""What the service keeps about a run and what its API answers: pydantic models, whose JSON
Schemas are the OpenAPI document's (:mod:`coordinator.service.openapi`)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from coordinator.results.outcome import Outcome
from coordinator.results.status import RunStatus


class RunState(StrEnum):
    """Where a submitted run stands. ``running``, ``complete``, ``partial`` and ``recovered`` mean
    what :class:`~coordinator.results.status.RunStatus` says; the service adds ``queued`` (waiting
    for its target), ``failed`` (its process ended without a summary) and ``cancelled`` (taken
    off the queue before it started)."""

    QUEUED = "queued"
    RUNNING = RunStatus.RUNNING.value
    COMPLETE = RunStatus.COMPLETE.value
    PARTIAL = RunStatus.PARTIAL.value
    RECOVERED = RunStatus.RECOVERED.value
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (RunState.QUEUED, RunState.RUNNING)


class RunProcess(BaseModel):
    """The ``finishline run`` process of a run, told apart from a later one with the same pid."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pid: int
    started: float = Field(description="the process's start time (wall clock s, psutil's create_time)")


class ServiceRun(BaseModel):
    """One submitted run, as kept in the service's Redis (never a secret: the scenario is not kept here)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="the service's id of the run (also its folder under the runs directory)")
    name: str = Field(description="the scenario's name")
    target: str = Field(description="the target's identity: its base URL, image, or 'simulator'")
    status: RunState
    submitted: float = Field(description="wall clock s")
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = Field(default=None, description="finishline run's exit code (docs/scenario.md)")
    outcome: Outcome | None = None
    headline: str | None = Field(default=None, description="the run's verdict in one line")
    run_dir: str | None = Field(default=None, description="the run directory, once the run has made it")
    process: RunProcess | None = None
    cancel_requested: bool = False
    source: str = Field(default="api", description="who submitted it: 'api', or 'schedule:NAME'")


class LiveFigures(BaseModel):
    """What a running run shows now, read from what it writes (its ledger and its own Redis)."""

    model_config = ConfigDict(extra="forbid")

    phase: str | None = Field(default=None, description="the phase running now")
    phases_planned: list[str] = Field(default_factory=list, description="the plan's steps, in order")
    phases_done: list[str] = Field(default_factory=list, description="phases that have ended, in order")
    progress: float | None = Field(default=None, description="the share of the plan's steps that have ended")
    requests_begun: int = Field(default=0, description="logical requests the workers have begun")
    users: int = 0
    in_flight: int = 0
    achieved_rate: float = Field(default=0.0, description="requests/s begun, summed over workers")


class RunView(ServiceRun):
    """A run as the API shows it: what is kept, its place in the queue and, while it runs, live figures."""

    queue_position: int | None = Field(default=None, description="1: the next to start on its target; null: not queued")
    live: LiveFigures | None = None


class RunList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs: list[RunView]


class Error(BaseModel):
    """Every 4xx answer: what is wrong, and the field (of the body, query or path) it is about."""

    model_config = ConfigDict(extra="forbid")

    error: str
    field: str | None = None


class Health(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str = "ok"
    version: str


class BaselineInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    tool: str
    steps: int
    created: str | None = None


class BaselineList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    baselines: list[BaselineInfo]


class SaveBaseline(BaseModel):
    """POST /baselines with JSON: save a finished run of this service as a baseline."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="letters, digits and _.-")
    run: str = Field(description="the id of a finished run")
    description: str = ""
    force: bool = Field(default=False, description="replace a baseline of the same name")
