"""``compare.json``: a comparison as a typed document (its JSON Schema is ``docs/compare.schema.json``).

Every other format (text, Markdown, HTML) is drawn from this model, so they say the same.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from coordinator.baselines.model import Provenance, Tool
from coordinator.compare.thresholds import Thresholds

COMPARE_VERSION: Literal[1] = 1
SCHEMA_ID = "https://finishline.dev/compare.schema.json"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")  # infinite: "Infinity"


class Verdict(StrEnum):
    BETTER = "better"  # beyond the threshold and significant, in the good direction
    SAME = "same"
    WORSE = "worse"  # beyond the threshold and significant, in the bad direction
    UNJUDGED = "unjudged"  # too few values to tell (a p99 of 50 requests), or a side has no value


class Method(StrEnum):
    BOOTSTRAP = "bootstrap"  # both sides' per-request values resampled: the interval is the delta's
    PROPORTIONS = "proportions"  # two error rates from counts: a normal interval of their difference
    POINT = "point"  # a side has summaries only: the two figures compared, no interval, threshold alone


class MetricComparison(_Model):
    metric: str = Field(description="finishline's name: ttft, tpot, output_tokens_per_s, error_rate.timeout, ...")
    stat: str = Field(description="p50 ... p99 for latencies, mean for rates and shares, p50 for cold starts")
    unit: str
    direction: Literal["lower", "higher"] = Field(description="which way is better")
    baseline: float | None
    current: float | None
    delta: float | None = Field(description="current minus baseline")
    relative: float | None = Field(description="delta over baseline")
    ci_low: float | None = Field(default=None, description="the delta's confidence interval (bootstrap/proportions)")
    ci_high: float | None = None
    method: Method
    threshold: str = Field(description="the limits a change had to exceed, in words")
    beyond_threshold: bool
    significant: bool | None = Field(description="the interval excludes zero; None for a point comparison")
    verdict: Verdict
    provenance_baseline: Provenance | None = None
    provenance_current: Provenance | None = None
    note: str | None = None

    @property
    def badness(self) -> float:
        """How far in the bad direction, relative to the baseline: what sorts worst regressions first."""
        if self.relative is None:
            return 0.0
        return self.relative if self.direction == "lower" else -self.relative


class StepComparison(_Model):
    current_step: str
    baseline_step: str
    workload: str
    matched_by: Literal["name", "load"]
    match: str = Field(description="the match as shown")
    metrics: list[MetricComparison]


class SideInfo(_Model):
    label: str = Field(description="as given on the command line")
    tool: Tool
    tool_version: str | None = None
    source: str
    target: str | None = None


class Comparison(_Model):
    """A run compared with a baseline: per matched step, workload and metric, with one verdict."""

    version: Literal[1] = COMPARE_VERSION
    current: SideInfo
    baseline: SideInfo
    thresholds: Thresholds
    steps: list[StepComparison]
    unmatched_current: list[str] = Field(default_factory=list, description="steps of the current side left out")
    unmatched_baseline: list[str] = Field(default_factory=list)
    comparable: list[str] = Field(
        default_factory=list, description="metrics both sides have, in the same definition (across tools)"
    )
    not_comparable: list[str] = Field(default_factory=list, description="metrics only one side has")
    warnings: list[str] = Field(default_factory=list)
    regression: bool
    worse: int = Field(ge=0)
    better: int = Field(ge=0)
    exit_code: int = Field(description="0 no regression, 1 regression")

    def worst_first(self) -> list[tuple[StepComparison, MetricComparison]]:
        """Every judged row, worse first (most worse first), then better, then the rest."""
        order = {Verdict.WORSE: 0, Verdict.BETTER: 1, Verdict.SAME: 2, Verdict.UNJUDGED: 3}
        rows = [(step, m) for step in self.steps for m in step.metrics]
        return sorted(rows, key=lambda r: (order[r[1].verdict], -r[1].badness))

    @property
    def finding(self) -> str:
        """What was found, in a line (a run's outcome quotes it as its reason)."""
        if self.regression:
            rows = [m for _, m in self.worst_first() if m.verdict is Verdict.WORSE]
            # each figure once, worst first, however many steps and workloads it got worse in
            names = list(dict.fromkeys(m.metric if m.stat == "mean" else f"{m.metric} {m.stat}" for m in rows))
            named = ", ".join(names[:3])
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            return f"{self.worse} figure(s) worse than baseline {self.baseline.label}: {named}{more}"
        extra = f", {self.better} better" if self.better else ""
        return f"against baseline {self.baseline.label} ({len(self.steps)} step(s) compared{extra})"

    @property
    def headline(self) -> str:
        return f"REGRESSION: {self.finding}" if self.regression else f"NO REGRESSION {self.finding}"


def schema() -> dict[str, Any]:
    body = Comparison.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **body}


def schema_json() -> str:
    return json.dumps(schema(), indent=2) + "\n"
