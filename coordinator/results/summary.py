"""``summary.json``: what a run measured, as a typed and versioned document.

The format is a promise: teams commit summaries as baselines and compare them for months, so
every version-1 file ever written loads with :meth:`Summary.model_validate_json`, and a change
of meaning or shape gets a new ``version``. ``docs/summary.schema.json`` is generated from
:class:`Summary` (``finishline schema --summary``). It is computed from the records by
:mod:`coordinator.results.summarize`.

Latency percentiles are over *successful* requests only, on the final attempt, with the
definitions of ``loadgen.metrics``; counts, errors, retries and goodput cover every request.
Times are milliseconds; rates are per second of the phase's measured duration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coordinator.results.losses import Losses
from coordinator.results.outcome import RunOutcome
from coordinator.results.selfcheck import SelfCheckResult
from coordinator.results.slo import Slo
from coordinator.results.soak import SoakVerdict
from coordinator.results.status import RunStatus
from loadgen import metrics
from loadgen.errors import UserError, describe_validation_error

SUMMARY_VERSION: Literal[1] = 1
ALL = "all"  # the whole run's group, and the workload column of a group's own row
LATENCY_NOTE = "latency percentiles are over successful requests only (final attempt)"


class _Document(BaseModel):
    """A part of summary.json: immutable, and an unknown key is an error (a newer format, or a typo)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LatencyStats(_Document):
    """One metric's distribution in ms over a group's successful requests; ``None`` where there is no data."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    n: int = Field(ge=0, description="values the statistics are over")
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    p99_9: float | None = Field(alias="p99.9")
    mean: float | None
    min: float | None
    max: float | None

    def at(self, percentile: float) -> float | None:
        """The value at one of ``loadgen.metrics.PERCENTILES``."""
        value: float | None = getattr(self, percentile_field(percentile))
        return value


def percentile_field(percentile: float) -> str:
    """The attribute of :class:`LatencyStats` holding ``percentile`` (99.9 -> ``p99_9``)."""
    name = f"p{percentile:g}".replace(".", "_")
    if name not in LatencyStats.model_fields:
        raise KeyError(f"no percentile {percentile:g} in the summary (it has {metrics.PERCENTILES})")
    return name


class LatencyByMetric(_Document):
    """Every latency of ``loadgen.metrics.LATENCY_METRICS``, in that order."""

    ttft: LatencyStats
    tpot: LatencyStats
    itl: LatencyStats
    e2e: LatencyStats
    dispatch_delay: LatencyStats
    client_queue: LatencyStats
    retry_wait: LatencyStats
    user_latency: LatencyStats

    def get(self, metric: str) -> LatencyStats:
        if metric not in LatencyByMetric.model_fields:
            raise KeyError(metric)
        stats: LatencyStats = getattr(self, metric)
        return stats

    def items(self) -> list[tuple[str, LatencyStats]]:
        return [(metric, self.get(metric)) for metric in metrics.LATENCY_METRICS]


class AnswerLatencyByMetric(_Document):
    """The answer alone, every metric of ``loadgen.metrics.ANSWER_METRICS``: a reasoning model's
    reasoning left out (without reasoning, the same values as TTFT, TPOT and ITL)."""

    ttfot: LatencyStats = Field(description="time to first output token: the first answer token, not reasoning")
    tpot_answer: LatencyStats = Field(description="TPOT over the answer tokens, from the first of them")
    itl_answer: LatencyStats = Field(description="ITL between the answer's chunks")

    def get(self, metric: str) -> LatencyStats:
        if metric not in AnswerLatencyByMetric.model_fields:
            raise KeyError(metric)
        stats: LatencyStats = getattr(self, metric)
        return stats

    def items(self) -> list[tuple[str, LatencyStats]]:
        return [(metric, self.get(metric)) for metric in metrics.ANSWER_METRICS]


class FailureAwareStats(_Document):
    """One metric's percentiles in ms over successful *and* failed requests, a failure counted as an
    infinitely slow request (``loadgen.metrics.failure_aware_percentiles``): ``None`` at a
    percentile that reaches the failures (or without any request)."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    n: int = Field(ge=0, description="requests counted: successful ones with the metric defined, and failed ones")
    failed: int = Field(ge=0, description="failed requests, counted as infinitely slow (cancelled ones are left out)")
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    p99_9: float | None = Field(alias="p99.9")

    def at(self, percentile: float) -> float | None:
        value: float | None = getattr(self, percentile_field(percentile))
        return value


class FailureAwareByMetric(_Document):
    """Every metric of ``loadgen.metrics.FAILURE_AWARE_METRICS``."""

    ttft: FailureAwareStats
    tpot: FailureAwareStats
    e2e: FailureAwareStats

    def items(self) -> list[tuple[str, FailureAwareStats]]:
        return [(metric, getattr(self, metric)) for metric in metrics.FAILURE_AWARE_METRICS]


class Goodput(_Document):
    """Requests that succeeded and met every SLO threshold (every successful one without SLOs)."""

    requests: int = Field(ge=0)
    share: float | None = Field(description="of all requests; None without requests")
    per_s: float | None


class SloCheck(_Document):
    """One threshold judged at the declared percentile of the group's successful requests."""

    limit_ms: float
    percentile: float
    value_ms: float | None = Field(description="None without successful requests")
    met: bool | None = Field(description="None without data")


class SloVerdict(_Document):
    checks: dict[str, SloCheck] = Field(description="per metric with a threshold (ttft, tpot, e2e)")
    met: bool | None = Field(description="every check with data met; None when none had data")


class GroupSummary(_Document):
    """Everything reported for one group of requests: a workload of a phase or of the run."""

    count: int = Field(ge=0, description="requests, failed ones included")
    ok: int = Field(ge=0)
    errors: int = Field(ge=0)
    errors_by_class: dict[str, int] = Field(description="failed requests per error class (loadgen.records)")
    attempts_by_class: dict[str, int] | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="every attempt per its own class, retried ones included (ok too): how many 429s the server "
        "sent; absent from summaries written before it was counted",
    )
    retries: int = Field(ge=0, description="attempts after the first, over all requests")
    attempts: int = Field(ge=0)
    requests_with_retries: int = Field(ge=0)
    duration_s: float | None = Field(description="measured duration the rates divide by; None without requests")
    requests_per_s: float | None
    ok_requests_per_s: float | None
    output_tokens: int = Field(ge=0, description="of successful requests")
    prompt_tokens: int = Field(ge=0, description="of successful requests")
    output_tokens_per_s: float | None
    reasoning_tokens: int | None = Field(
        default=None,
        ge=0,
        exclude_if=lambda v: v is None,
        description="of output_tokens, the reasoning (successful requests); absent from summaries written before",
    )
    answer_tokens: int | None = Field(
        default=None,
        ge=0,
        exclude_if=lambda v: v is None,
        description="of output_tokens, the answer (content and tool calls); absent from summaries written before",
    )
    goodput: Goodput
    latency_ms: LatencyByMetric
    latency_ms_answer: AnswerLatencyByMetric | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="latencies of the answer alone, reasoning left out; absent from summaries written before",
    )
    latency_ms_failure_aware: FailureAwareByMetric | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="percentiles counting failed requests as infinitely slow; absent from summaries written before",
    )
    slo: SloVerdict | None = Field(default=None, exclude_if=lambda v: v is None, description="only with SLOs")


class GroupWithWorkloads(GroupSummary):
    """A phase's or the whole run's numbers, and the same for each of its workloads."""

    workloads: dict[str, GroupSummary]


class PhaseWindow(_Document):
    """When a phase ran (monotonic seconds), as the master driver logged it; ``end`` unset while it runs."""

    name: str
    start: float
    end: float | None = None


class RunInfo(_Document):
    """What the run said about itself (empty when the summary was made without a run)."""

    id: str = ""
    scenario: str = ""
    target: str | None = None
    started_wall: float | None = Field(default=None, description="time.time() at the start of the run")
    phases: tuple[PhaseWindow, ...] = ()
    records: int = Field(default=0, ge=0, description="records in records.jsonl.gz, warm-ups included")
    extras: dict[str, Any] = Field(default_factory=dict, description="results of add-ons and external phases")


class Summary(_Document):
    """``summary.json``: the run as a whole (``all``, warm-ups left out), each phase, each workload."""

    version: Literal[1] = Field(description="the format's version: a change of shape or meaning gets a new one")
    run: RunInfo
    status: RunStatus = Field(description="complete or partial (a summary is written when the run has ended)")
    partial: bool
    partial_reason: str | None
    valid: bool = Field(description="false when the self-check found the client saturated")
    invalid_reasons: tuple[str, ...]
    selfcheck: SelfCheckResult | None
    latency_note: str
    slo: Slo | None = Field(description="the SLOs as declared")
    phases_order: tuple[str, ...]
    unmeasured_phases: tuple[str, ...] = Field(description="warm-ups: in phases, not in all")
    all: GroupWithWorkloads
    phases: dict[str, GroupWithWorkloads]
    losses: Losses | None = Field(
        default=None, exclude_if=lambda v: v is None, description="records and workers lost; absent when none were"
    )
    outcome: RunOutcome | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="the verdict and exit code of the run (absent in files written before it existed)",
    )
    soak: SoakVerdict | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="the soak's verdict and trends (scenario section soak; the windows are in soak.json)",
    )


def read_summary(path: Path) -> Summary:
    """A run's ``summary.json``; a file that is not one is a :class:`UserError` naming it and the problem."""
    try:
        return Summary.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise UserError(
            f"{path}: not a finishline summary (version {SUMMARY_VERSION}): {describe_validation_error(exc)}"
        ) from None
