"""The scenario file: what to load, with what traffic, how hard, and what counts as good.

Everything a user writes is a strict pydantic model (unknown keys are mistakes), validated
before any traffic is sent; ``docs/scenario.schema.json`` is generated from ``Scenario``.
Targets and phases are discriminated unions on ``kind`` so other packages (Docker targets,
cold-start phases) join them without changing the run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from coordinator.docker.spec import ColdStartPhase, DockerTargetSpec
from coordinator.scenario.phases import (
    LadderPhase,
    RampPhase,
    SoakPhase,
    SteadyPhase,
    WarmupPhase,
    _default_kind,
)
from coordinator.selfcheck import SelfCheckLimits
from loadgen.spec import RetryPolicy, Spec, WorkloadSpec, readable_file

_TOKENIZER_HELP = (
    "the model's tokenizer.json (relative to the scenario file): counts tokens when the server reports no usage"
)


def _readable(value: Path | None, info: ValidationInfo) -> Path | None:
    """An optional file the scenario names (tokenizer, simulator config) must be readable."""
    return None if value is None else readable_file(value, info)


class UrlTarget(Spec):
    """An OpenAI-compatible endpoint that is already running. The key is read from ``api_key_env``."""

    kind: Literal["url"] = "url"
    name: str = Field(default="", description="label in results (default: the URL)")
    base_url: str = Field(
        pattern=r"^https?://", description="ends before /chat/completions, e.g. http://127.0.0.1:8000/v1"
    )
    model: str = Field(min_length=1)
    api_key_env: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="environment variable holding the API key"
    )
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=600.0, gt=0)
    tokenizer: Path | None = Field(default=None, description=_TOKENIZER_HELP)

    _tokenizer = field_validator("tokenizer")(_readable)

    @field_validator("api_key_env")
    @classmethod
    def _key_is_set(cls, value: str | None) -> str | None:
        if value is not None and not os.environ.get(value):
            raise ValueError(f"environment variable {value} is not set; export it before running")
        return value


class SimulatorTarget(Spec):
    """The built-in simulator, started by the run on a free loopback port and stopped after."""

    kind: Literal["simulator"]
    name: str = Field(default="simulator", min_length=1)
    preset: str | None = Field(default=None, description="simulator preset (see `finishline simulate --help`)")
    config: Path | None = Field(default=None, description="simulator config file (relative to the scenario file)")
    model: str = Field(default="simulator", min_length=1)
    trace: bool = Field(default=True, description="keep the simulator's request trace in the run directory")
    tokenizer: Path | None = Field(default=None, description=_TOKENIZER_HELP)

    _files = field_validator("tokenizer", "config")(_readable)


class DockerTarget(DockerTargetSpec):
    """Start the endpoint under test in a container (``coordinator.docker.spec.DockerTargetSpec``),
    plus what the workers need to know about its model."""

    tokenizer: Path | None = Field(default=None, description=_TOKENIZER_HELP)

    _tokenizer = field_validator("tokenizer")(_readable)


Target = Annotated[UrlTarget | SimulatorTarget | DockerTarget, Field(discriminator="kind")]

Phase = Annotated[
    Annotated[
        SteadyPhase | WarmupPhase | SoakPhase | RampPhase | LadderPhase | ColdStartPhase,
        Field(discriminator="kind"),
    ],
    BeforeValidator(_default_kind),
]


class Slo(Spec):
    """Service-level objectives: a request is *good* when it succeeded and met every threshold."""

    ttft_ms: float | None = Field(default=None, gt=0)
    tpot_ms: float | None = Field(default=None, gt=0)
    e2e_ms: float | None = Field(default=None, gt=0)
    percentile: float = Field(default=99.0, gt=0, lt=100, description="percentile the verdict is judged at")


class MetricsSection(Spec):
    """Live metrics during the run (the bridge and Prometheus; off unless asked for)."""

    prometheus: bool = Field(default=False, description="start the bridge and expose /metrics while the run lasts")
    bridge_port: int | None = Field(
        default=None, ge=1, le=65535, description="bridge /metrics port (free port if unset)"
    )
    prometheus_port: int | None = Field(default=None, ge=1, le=65535, description="Prometheus port (free if unset)")
    scrape_target: bool = Field(default=True, description="also scrape the target's own /metrics")


class Scenario(Spec):
    """A whole load test. Relative paths are relative to the scenario file."""

    name: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    target: Target
    workloads: list[WorkloadSpec] = Field(min_length=1)
    phases: list[Phase] = Field(min_length=1)
    slo: Slo | None = None
    retry: RetryPolicy = RetryPolicy()
    workers: int = Field(default=2, ge=1, le=64, description="Locust worker processes")
    output_dir: Path = Field(default=Path("runs"), description="run directories go under it")
    redis_url: str | None = Field(
        default=None, pattern=r"^(redis|rediss|unix)://", description="default: a private redis-server"
    )
    seed: int = 0
    drain_timeout: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="seconds users get to finish the request in flight when load drops or the run ends; then cancelled",
    )
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: MetricsSection = MetricsSection()
    selfcheck: SelfCheckLimits = SelfCheckLimits()

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        names = [w.name for w in self.workloads]
        if len(set(names)) != len(names):
            raise ValueError(f"workload names must be unique, got {names}")
        phase_names = [p.name for p in self.phases]
        if len(set(phase_names)) != len(phase_names):
            raise ValueError(f"phase names must be unique, got {phase_names}")
        for phase in self.phases:
            if isinstance(phase, ColdStartPhase) and not isinstance(self.target, DockerTargetSpec):
                raise ValueError(f"phase {phase.name!r}: cold_start needs a target of kind docker")
        return self

    def redacted(self) -> dict[str, Any]:
        """The scenario as run, for the run directory: never holds a secret (keys stay in the env)."""
        data = self.model_dump(mode="json", exclude_none=True)
        headers = data.get("target", {}).get("headers")
        if headers:
            data["target"]["headers"] = dict.fromkeys(headers, "<redacted>")
        return data
