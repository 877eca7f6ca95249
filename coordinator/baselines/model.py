"""A baseline: what a load test measured, kept so that later runs are compared with it.

A baseline is a directory a team can commit (``baselines/{name}/``): ``baseline.json`` (this
model), and, where the source had them, the per-request values (``records.jsonl.gz`` for a
finishline run, ``requests.npz`` for an imported file) that comparisons bootstrap over.

Every figure in a baseline is in finishline's own definitions (``loadgen/metrics.py``,
``docs/metrics.md``), whichever tool measured it: an importer maps another tool's metrics onto
them by definition, never by name (``coordinator/baselines/definitions.py``), recomputes
finishline's definitions from per-request data when the file has it, and says for each figure
how it was obtained (:class:`Provenance`). A figure the source does not have, or has with a
meaning that cannot be mapped, is absent, never guessed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coordinator.results.summary import Summary
from loadgen.errors import UserError, describe_validation_error

BASELINE_VERSION: Literal[1] = 1
BASELINE_FILE = "baseline.json"
RECORDS_FILE = "records.jsonl.gz"  # a finishline run's records, copied
REQUESTS_FILE = "requests.npz"  # an imported file's per-request values (coordinator.baselines.samples)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"


class _Model(BaseModel):
    # a failure-aware percentile that reaches the failures is infinite: kept as "Infinity"
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")


class Tool(StrEnum):
    """Who measured it."""

    FINISHLINE = "finishline"
    GUIDELLM = "guidellm"
    VLLM = "vllm"  # vllm bench serve
    AIPERF = "aiperf"
    CARD = "card"  # numbers copied by hand from a model card or a leaderboard


class Provenance(StrEnum):
    """How a figure was obtained."""

    RECORDS = "records"  # computed by finishline from per-request data, in its own definitions
    SUMMARY = "summary"  # the tool's own aggregate, of a metric defined as finishline defines it
    CONVERTED = "converted"  # the tool's aggregate, converted (a unit, a per-chunk to per-token rule)
    DECLARED = "declared"  # written by hand (a model card)


class LoadKind(StrEnum):
    CONCURRENCY = "concurrency"  # closed loop: concurrent users or streams
    RATE = "rate"  # open loop: requests per second
    SYNCHRONOUS = "synchronous"  # one request at a time (concurrency 1)
    THROUGHPUT = "throughput"  # as fast as possible, no fixed level
    COLD_START = "cold_start"


class Load(_Model):
    """The load level of a step, so that steps of two tools are matched when their names differ."""

    kind: LoadKind
    value: float | None = Field(default=None, description="users/streams, or requests/s")
    label: str = Field(default="", description="the source's own name for it (GuideLLM's strategy, a phase kind)")


class MetricStats(_Model):
    """One metric of a step, in finishline's definition and unit.

    Latencies (``ttft``, ``tpot``, ``itl``, ``e2e``) in ms with the percentiles the source has;
    rates (``output_tokens_per_s``, ``requests_per_s``, ``goodput_per_s``) per second in ``mean``;
    ``error_rate`` a share in ``mean``.
    """

    unit: Literal["ms", "per_s", "share"]
    n: int | None = Field(default=None, ge=0, description="values the statistics are over")
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p99_9: float | None = None
    provenance: Provenance
    note: str | None = Field(default=None, description="how it was mapped from the source, when not the same name")

    def at(self, stat: str) -> float | None:
        """``mean`` or a percentile field (``p50`` ... ``p99_9``)."""
        value = getattr(self, stat)
        return None if value is None else float(value)


class Step(_Model):
    """One measured step: a finishline phase (and workload), or one benchmark of another tool."""

    name: str
    workload: str = "all"
    load: Load | None = None
    requests: int = Field(ge=0, description="requests measured, failed ones included")
    errors: int = Field(default=0, ge=0)
    errors_by_class: dict[str, int] = Field(default_factory=dict)
    duration_s: float | None = None
    metrics: dict[str, MetricStats] = Field(default_factory=dict, description="finishline metric name -> figures")
    has_samples: bool = Field(default=False, description="per-request values are kept: comparisons bootstrap")
    samples_key: str | None = Field(
        default=None, description="where its per-request values are (phase name or npz prefix)"
    )


class TargetInfo(_Model):
    """What was measured: enough to tell two targets apart months later."""

    kind: str | None = None  # url, simulator, docker, or the other tool's backend
    label: str | None = None
    base_url: str | None = None
    model: str | None = None
    served_models: list[str] = Field(default_factory=list)
    server: str | None = Field(default=None, description="the server's own name and version, where it tells")
    image: str | None = None
    image_id: str | None = None
    command: list[str] | None = None
    limits: dict[str, str | int | float | None] = Field(default_factory=dict)
    simulator: dict[str, object] | None = Field(default=None, description="the simulator's settings (preset, config)")


class Baseline(_Model):
    """``baseline.json``: the format a team commits and compares against for months."""

    version: Literal[1] = BASELINE_VERSION
    name: str = Field(pattern=NAME_PATTERN)
    created: datetime
    tool: Tool
    tool_version: str | None = None
    source: str = Field(description="the run directory or file it was made from, as given")
    description: str = ""
    target: TargetInfo = Field(default_factory=TargetInfo)
    environment: dict[str, object] = Field(default_factory=dict)
    scenario: str | None = Field(default=None, description="the scenario as run (YAML), for a finishline run")
    summary: Summary | None = Field(default=None, description="a finishline run's summary, whole")
    steps: list[Step]
    warnings: list[str] = Field(default_factory=list, description="what a reader must know to compare with it")

    @property
    def client_overhead_note(self) -> str | None:
        """Another tool's latencies include its own client's overhead, not finishline's."""
        if self.tool in (Tool.FINISHLINE, Tool.CARD):
            return None
        return (
            f"{self.tool.value}'s TTFT and E2E include its own client overhead (on this project's machines "
            "GuideLLM and AIPerf report TTFT 3-26 ms above the server's ground truth at 16-64 streams, "
            "finishline under 3 ms): a difference in them may be the clients', not the server's"
        )


def read_baseline(path: Path) -> Baseline:
    """A ``baseline.json``, or one line naming the file and the problem."""
    try:
        return Baseline.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror})") from None
    except ValidationError as exc:
        raise UserError(f"{path}: not a finishline baseline ({describe_validation_error(exc)})") from None
