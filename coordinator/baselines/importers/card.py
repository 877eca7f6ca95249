"""A card: figures copied by hand from a model card or a leaderboard, as a small YAML file.

For "TTFT p50 120 ms and output 2,400 tok/s at 8 concurrent requests, 512 in / 128 out"::

    format: card
    source: https://example.com/model-card (2026-11)
    model: org/model
    steps:
      - concurrency: 8
        prompt_tokens: 512
        output_tokens: 128
        ttft_ms: {p50: 120}
        output_tokens_per_s: 2400

Every figure is declared in finishline's definitions (``docs/metrics.md``): the writer of the
card says so by writing it here, so it is kept as :attr:`Provenance.DECLARED`. Its JSON Schema
is ``docs/card.schema.json`` (``finishline baseline card-schema``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coordinator.baselines.importers.document import Document
from coordinator.baselines.importers.registry import Imported, Importer, summary_step, unique_name
from coordinator.baselines.model import Load, LoadKind, MetricStats, Provenance, Step, TargetInfo, Tool

SCHEMA_ID = "https://finishline.dev/card.schema.json"


class _Card(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CardLatency(_Card):
    """A latency's figures in ms, those the card gives."""

    mean: float | None = Field(default=None, ge=0)
    p50: float | None = Field(default=None, ge=0)
    p90: float | None = Field(default=None, ge=0)
    p95: float | None = Field(default=None, ge=0)
    p99: float | None = Field(default=None, ge=0)
    p99_9: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _some(self) -> CardLatency:
        if all(getattr(self, k) is None for k in type(self).model_fields):
            raise ValueError("give at least one of mean, p50, p90, p95, p99, p99_9")
        return self


class CardStep(_Card):
    """One load level the card reports figures for."""

    name: str | None = Field(default=None, description="defaults to concurrency-N or rate-R")
    concurrency: int | None = Field(default=None, ge=1, description="concurrent requests (closed loop)")
    rate: float | None = Field(default=None, gt=0, description="requests per second (open loop)")
    prompt_tokens: int | None = Field(default=None, ge=1, description="the workload's prompt length")
    output_tokens: int | None = Field(default=None, ge=1, description="the workload's reply length")
    ttft_ms: CardLatency | None = None
    tpot_ms: CardLatency | None = Field(default=None, description="(E2E - TTFT) / (output tokens - 1)")
    itl_ms: CardLatency | None = Field(default=None, description="per token")
    e2e_ms: CardLatency | None = None
    output_tokens_per_s: float | None = Field(default=None, gt=0)
    requests_per_s: float | None = Field(default=None, gt=0)
    note: str | None = Field(default=None, description="how the figures were read off the card")

    @model_validator(mode="after")
    def _one_load(self) -> CardStep:
        if self.concurrency is not None and self.rate is not None:
            raise ValueError("give concurrency or rate, not both")
        return self


class Card(_Card):
    """``format: card``: figures copied from a model card, in finishline's definitions."""

    format: Literal["card"]
    source: str = Field(min_length=1, description="where the figures come from (a URL, a page, a date)")
    model: str | None = None
    server: str | None = Field(default=None, description="the server and version the card measured")
    hardware: str | None = None
    description: str = ""
    steps: list[CardStep] = Field(min_length=1)


def card_schema() -> dict[str, Any]:
    schema = Card.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_json() -> str:
    return json.dumps(card_schema(), indent=2) + "\n"


def _latency(value: CardLatency | None, note: str | None) -> MetricStats | None:
    if value is None:
        return None
    return MetricStats(unit="ms", provenance=Provenance.DECLARED, note=note, **value.model_dump(exclude_none=True))


def _rate(value: float | None, note: str | None) -> MetricStats | None:
    return None if value is None else MetricStats(unit="per_s", mean=value, provenance=Provenance.DECLARED, note=note)


def _load(step: CardStep) -> tuple[str, Load | None]:
    if step.concurrency is not None:
        load = Load(kind=LoadKind.CONCURRENCY, value=float(step.concurrency), label="card")
        return f"concurrency-{step.concurrency}", load
    if step.rate is not None:
        return f"rate-{step.rate:g}", Load(kind=LoadKind.RATE, value=step.rate, label="card")
    return "card", None


@Importer.register
class CardImporter(Importer):
    format = "card"
    tool = Tool.CARD
    describes = "a card YAML (format: card)"

    @classmethod
    def detect(cls, doc: Document) -> bool:
        return isinstance(doc.data, dict) and doc.data.get("format") == "card"

    def read(self, doc: Document, name: str, records: Path | None) -> Imported:
        card = doc.validate(Card, self.describes)
        steps: list[Step] = []
        warnings: list[str] = []
        taken: set[str] = set()
        for item in card.steps:
            wanted, load = _load(item)
            step_name = unique_name(item.name or wanted, taken)
            metrics = {
                "ttft": _latency(item.ttft_ms, item.note),
                "tpot": _latency(item.tpot_ms, item.note),
                "itl": _latency(item.itl_ms, item.note),
                "e2e": _latency(item.e2e_ms, item.note),
                "output_tokens_per_s": _rate(item.output_tokens_per_s, item.note),
                "requests_per_s": _rate(item.requests_per_s, item.note),
            }
            steps.append(summary_step(step_name, load, metrics, requests=0, errors=0, duration_s=None))
            if item.prompt_tokens or item.output_tokens:
                warnings.append(
                    f"step {step_name}: declared for prompts of {item.prompt_tokens or '?'} tokens and replies of "
                    f"{item.output_tokens or '?'}; compare it with a run of that workload"
                )
        target = TargetInfo(kind="card", label=card.hardware, model=card.model, server=card.server)
        description = card.description or f"from {card.source}"
        baseline = self.baseline(
            doc, name, steps, version=None, target=target, description=description, warnings=warnings
        )
        return Imported(baseline, {}, {f"source-{doc.path.name}": doc.path})
