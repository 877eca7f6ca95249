"""The scenario file: what to load, with what traffic, how hard, and what counts as good.

Everything a user writes is a strict pydantic model (unknown keys are mistakes), validated
before any traffic is sent; ``docs/scenario.schema.json`` is generated from ``Scenario``.
Targets and phases are discriminated unions on ``kind``, built from every kind a feature
registers (``coordinator.registry``), so a feature (Docker targets, cold-start phases) joins
them without changing this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator, model_validator

from coordinator import registry
from coordinator.results.matrix import MatrixValue
from coordinator.results.outcome import Checks
from coordinator.results.selfcheck import SelfCheckLimits
from coordinator.results.slo import Slo
from coordinator.results.soak import SoakSpec
from coordinator.scenario.matrix import check_axes
from coordinator.scenario.phases import PhaseSpec, SoakPhase, default_kind
from coordinator.scenario.targets import TargetSpec
from coordinator.scenario.workers import WorkersSpec
from loadgen.declaration import Spec, check_unique
from loadgen.spec import RetryPolicy, WorkloadSpec

if TYPE_CHECKING:  # statically, the base classes; at run time, the union of every registered kind
    Target = TargetSpec
    Phase = PhaseSpec
else:
    Target = Annotated[Union[tuple(k.spec for k in registry.target_kinds())], Field(discriminator="kind")]  # noqa: UP007 - a union of a runtime tuple has no X | Y spelling
    Phase = Annotated[
        Annotated[Union[tuple(k.spec for k in registry.phase_kinds())], Field(discriminator="kind")],  # noqa: UP007 - as above
        BeforeValidator(default_kind),
    ]


# A number is a count of local workers, a mapping the long form: the callable discriminator
# reports the problems of the form the user wrote, not of both.
WorkersField = Annotated[
    Annotated[Annotated[int, Field(ge=1, le=64)], Tag("count")] | Annotated[WorkersSpec, Tag("sources")],
    Discriminator(lambda v: "sources" if isinstance(v, dict | WorkersSpec) else "count"),
]


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
    workers: WorkersField = Field(
        default=2,
        description="Locust worker processes on this machine, or where each worker comes from "
        "({local, remote, containers, ...}: docs/scenario.md, Workers)",
    )
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
    checks: Checks = Checks()
    soak: SoakSpec | None = Field(
        default=None,
        description="judge the run as a soak: windowed series, their trends, stable or drifting (exit 7; docs/soak.md)",
    )
    matrix: dict[str, Annotated[list[MatrixValue], Field(min_length=1)]] = Field(
        default_factory=dict,
        description="run the workloads and phases against each variant of the target: dotted paths into this "
        "scenario (target.settings.max_num_seqs, target.environment.LLAMA_PARALLEL, target.memory, phases.0.users) "
        "to the values each takes; every combination is a run of its own (docs/scenario.md, Matrix)",
    )

    @field_validator("matrix")
    @classmethod
    def _axes(cls, matrix: dict[str, list[MatrixValue]]) -> dict[str, list[MatrixValue]]:
        check_axes(matrix)
        return matrix

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        check_unique("workload", [w.name for w in self.workloads])
        check_unique("phase", [p.name for p in self.phases])
        capabilities = registry.target_kind(self.target.kind).capabilities
        for phase in self.phases:
            phase.check_workloads(self.workloads)
            missing = registry.phase_kind(phase.kind).requires - capabilities
            if missing:
                able = [k.kind for k in registry.target_kinds() if missing <= k.capabilities]
                raise ValueError(f"phase {phase.name!r}: {phase.kind} needs a target of kind {' or '.join(able)}")
        if self.soak is not None and self.soak.phase is not None:
            constant = [p.name for p in self.phases if p.kind in ("steady", "soak", "warmup")]
            if self.soak.phase not in constant:  # a ladder's or a ramp's load changes on purpose
                raise ValueError(f"soak.phase {self.soak.phase!r} is not a steady or soak phase (those: {constant})")
        return self

    @property
    def soak_analysis(self) -> SoakSpec | None:
        """What the run's soak analysis is to do, or None for none: the ``soak`` section, or its
        defaults when a phase is of kind ``soak``; the phase, unless named, is the longest soak phase."""
        soaks = [p for p in self.phases if isinstance(p, SoakPhase)]
        if self.soak is None and not soaks:
            return None
        spec = self.soak or SoakSpec()
        if spec.phase is None and soaks:
            spec = spec.model_copy(update={"phase": max(soaks, key=lambda p: p.duration).name})
        return spec

    @property
    def worker_sources(self) -> WorkersSpec:
        """``workers`` in its long form: how many of each source, and where the run listens for them."""
        return WorkersSpec.of(self.workers)

    @property
    def worker_count(self) -> int:
        """Every worker the run waits for, whatever its source."""
        return self.worker_sources.total

    def redacted(self) -> dict[str, Any]:
        """The scenario as run, for the run directory: never holds a secret (keys stay in the env)."""
        data = self.model_dump(mode="json", exclude_none=True)
        if not data.get("matrix"):  # most scenarios have none: say nothing about it
            data.pop("matrix", None)
        headers = data.get("target", {}).get("headers")
        if headers:
            data["target"]["headers"] = dict.fromkeys(headers, "<redacted>")
        return data
