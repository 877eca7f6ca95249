"""The thresholds file: how large a change must be, per metric, before it can be called better or worse.

A change is *beyond the threshold* when it exceeds every limit given for its metric (the
relative one, a share of the baseline's value, and the absolute one, in the metric's unit),
so ``{relative: 0.2, absolute_ms: 5}`` reads "20 % and at least 5 ms": the absolute limit
keeps a 1 ms figure from failing a build over 0.3 ms. The verdict also needs significance
(``coordinator.compare.verdict``). Keys are a metric (``tpot``), a latency at one statistic
(``ttft.p99``, which wins over ``ttft``), or the cold-start family (``cold_start``, or one of
its metrics, ``cold_start.ready``); what a file leaves out keeps its default (:data:`DEFAULTS`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coordinator.compare.metrics import COLD_START, METRICS, Kind, metric, threshold_keys
from loadgen.errors import UserError, describe_validation_error

SCHEMA_ID = "https://finishline.dev/thresholds.schema.json"


class Limit(BaseModel):
    """The limits of one metric; a change is beyond the threshold when it exceeds every one given."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    relative: float | None = Field(default=None, ge=0, description="a share of the baseline's value (0.1: 10 %)")
    absolute: float | None = Field(
        default=None, ge=0, description="in the metric's unit: ms, per second, or a share of requests (0.01: 1 point)"
    )
    absolute_ms: float | None = Field(default=None, ge=0, description="the same as absolute, for a latency (ms)")

    @property
    def absolute_limit(self) -> float | None:
        return self.absolute if self.absolute is not None else self.absolute_ms

    def exceeded(self, delta: float, baseline: float) -> bool:
        """Whether a change of ``delta`` from ``baseline`` exceeds every limit (no limit: any change)."""
        size = abs(delta)
        if self.relative is not None and not size > self.relative * abs(baseline):
            return False
        absolute = self.absolute_limit
        return not (absolute is not None and not size > absolute)

    def describe(self, unit: str = "") -> str:
        """In words: ``10% and 1 ms``; an absolute share in percentage points (``1 pp``)."""
        parts = []
        if self.relative is not None:
            parts.append(f"{100 * self.relative:g}%")
        if self.absolute is not None:
            parts.append(f"{100 * self.absolute:g} pp" if unit == "%" else f"{self.absolute:g} {unit}".rstrip())
        if self.absolute_ms is not None:
            parts.append(f"{self.absolute_ms:g} ms")
        return " and ".join(parts) or "any change"


# The defaults: a median moves less than a tail, and a throughput less than either; the
# absolute floors keep changes of a millisecond or less from counting.
DEFAULTS: dict[str, Limit] = {
    **{name: Limit(relative=0.10, absolute_ms=1.0) for name, m in METRICS.items() if m.kind is Kind.LATENCY},
    **{f"{name}.p99": Limit(relative=0.20, absolute_ms=2.0) for name, m in METRICS.items() if m.kind is Kind.LATENCY},
    **{name: Limit(relative=0.05) for name, m in METRICS.items() if m.kind is Kind.RATE},
    "error_rate": Limit(absolute=0.01),
    COLD_START: Limit(relative=0.20, absolute_ms=50.0),
}


class Thresholds(BaseModel):
    """A thresholds file (YAML or JSON): limits per metric, and how the confidence intervals are taken."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    confidence: float = Field(default=0.95, gt=0.5, lt=1.0, description="of the intervals significance is read from")
    replicates: int = Field(default=1000, ge=100, le=20000, description="bootstrap replicates")
    seed: int = Field(default=0, description="of the bootstrap: the same inputs give the same verdict")
    metrics: dict[str, Limit] = Field(
        default_factory=dict,
        description="metric (tpot), metric at a statistic (ttft.p99) or cold_start[.step] -> limits; others keep the defaults",
    )

    def limit(self, name: str, stat: str) -> Limit:
        """The limits for ``name`` at ``stat``: the file's most specific key, else the default's."""
        family = name.split(".", 1)[0]
        keys = [f"{name}.{stat}", name]
        if family != name:
            keys.append(family)  # cold_start.ready -> cold_start; error_rate.timeout -> error_rate
        for table in (self.metrics, DEFAULTS):
            for key in keys:
                if key in table:
                    return table[key]
        return Limit()


def schema() -> dict[str, Any]:
    body = Thresholds.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **body}


def schema_json() -> str:
    return json.dumps(schema(), indent=2) + "\n"


def _check_keys(path: Path, thresholds: Thresholds) -> None:
    for key, limit in thresholds.metrics.items():
        name, _, stat = key.partition(".")
        known = key in METRICS or (
            name in METRICS and METRICS[name].kind is Kind.LATENCY and stat in METRICS[name].stats
        )
        if name == COLD_START:
            known = True
        if not known:
            raise UserError(
                f"{path}: metrics.{key}: unknown metric; use one of {', '.join(threshold_keys())} (docs/compare.md)"
            )
        if limit.absolute is not None and limit.absolute_ms is not None:
            raise UserError(f"{path}: metrics.{key}: give absolute or absolute_ms, not both")
        if limit.absolute_ms is not None and metric(key if name == COLD_START else name).unit != "ms":
            raise UserError(f"{path}: metrics.{key}.absolute_ms: {name} is not in ms; use absolute")


def read_thresholds(path: Path | None) -> Thresholds:
    """A thresholds file, or the defaults without one; a bad file is one line naming it and the field."""
    if path is None:
        return Thresholds()
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UserError(f"--thresholds: cannot read {path} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}:{where} not valid YAML or JSON") from None
    try:
        thresholds = Thresholds.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise UserError(f"{path}: {describe_validation_error(exc)}") from None
    _check_keys(path, thresholds)
    return thresholds
