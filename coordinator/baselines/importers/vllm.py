"""``vllm bench serve --save-result`` JSON: one object, or one per line with ``--append-result``;
each object (one run of the benchmark) is one step, named after its load.

With ``--save-detailed`` the object carries per-request arrays (``ttfts``, ``itls``,
``output_lens``, ``errors``, and in newer versions ``latencies``; times in seconds) and
finishline's definitions are computed from them. Without, only vLLM's aggregates are there, and
only those that mean what finishline's do are kept: vLLM's ITL is one value per chunk, so it is
left out. Percentile keys (``p99_ttft_ms``) exist only for the percentiles that run asked for
(``--metric-percentiles``, 99 by default) and the metrics it named (``--percentile-metrics``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coordinator.baselines.definitions import (
    STAT_FIELDS,
    RequestTimes,
    error_class_of_text,
    mapped_note,
    mapping,
    rate_stats,
    samples_of,
    share_stats,
    summary_stats,
)
from coordinator.baselines.importers.document import Document
from coordinator.baselines.importers.registry import (
    Imported,
    Importer,
    records_step,
    summary_step,
    unique_name,
)
from coordinator.baselines.model import Load, LoadKind, MetricStats, Provenance, Step, TargetInfo, Tool
from coordinator.baselines.samples import StepSamples
from loadgen.errors import UserError, describe_validation_error

_PERCENTILE_KEY = re.compile(r"^p(\d+(?:\.\d+)?)_(ttft|tpot|itl|e2el)_ms$")


class VllmResult(BaseModel):
    """One ``vllm bench serve`` result: the fields read are declared; percentile keys are extra."""

    model_config = ConfigDict(extra="allow", frozen=True)

    date: str | None = None
    backend: str | None = None
    model_id: str | None = None
    request_rate: float | None = None  # "inf" in the file for no rate limit
    burstiness: float | None = None
    max_concurrency: int | None = None
    duration: float = Field(gt=0, description="seconds")
    completed: int = Field(ge=0)
    failed: int = Field(default=0, ge=0)
    total_output_tokens: int | None = None
    request_throughput: float | None = None
    output_throughput: float | None = None
    mean_ttft_ms: float | None = None
    median_ttft_ms: float | None = None
    mean_tpot_ms: float | None = None
    median_tpot_ms: float | None = None
    mean_e2el_ms: float | None = None
    median_e2el_ms: float | None = None
    # --save-detailed: one entry per request, failed ones included (seconds)
    ttfts: list[float] | None = None
    itls: list[list[float]] | None = None
    latencies: list[float] | None = None
    output_lens: list[int] | None = None
    errors: list[str | None] | None = None

    def percentiles(self, metric: str) -> dict[str, float]:
        """The run's ``pNN_{metric}_ms`` keys under finishline's field names (``p99.9`` is ``p99_9``)."""
        out: dict[str, float] = {}
        for key, value in (self.model_extra or {}).items():
            found = _PERCENTILE_KEY.match(key)
            if not found or found.group(2) != metric:
                continue
            field = "p" + found.group(1).replace(".", "_").removesuffix("_0")
            if field in STAT_FIELDS and isinstance(value, int | float):
                out[field] = float(value)
        median = getattr(self, f"median_{metric}_ms", None)
        if median is not None:
            out.setdefault("p50", median)
        return out


def load_of(r: VllmResult) -> tuple[str, Load]:
    rate = r.request_rate
    if rate is not None and math.isfinite(rate):
        label = "poisson" if r.burstiness in (None, 1.0) else f"gamma, burstiness {r.burstiness:g}"
        if r.max_concurrency is not None:
            label += f", max concurrency {r.max_concurrency}"
        return f"rate-{rate:g}", Load(kind=LoadKind.RATE, value=rate, label=label)
    if r.max_concurrency is not None:
        return f"concurrency-{r.max_concurrency}", Load(
            kind=LoadKind.CONCURRENCY, value=float(r.max_concurrency), label="max-concurrency"
        )
    return "throughput", Load(kind=LoadKind.THROUGHPUT, label="request-rate inf")


def _times(r: VllmResult) -> RequestTimes | None:
    """The per-request values, when the result has all finishline needs (else ``None``)."""
    n = r.completed + r.failed
    if r.ttfts is None or r.output_lens is None or r.errors is None or r.itls is None:
        return None
    if not n or any(len(a) != n for a in (r.ttfts, r.output_lens, r.errors, r.itls)):
        return None
    if r.latencies is not None and len(r.latencies) != n:
        return None
    lens = np.asarray(r.output_lens, dtype=np.float64)
    ok = np.array([not e for e in r.errors]) & (lens > 0)
    gaps = [np.asarray(g, dtype=np.float64) * 1000.0 for g in r.itls]
    ttft = np.asarray(r.ttfts, dtype=np.float64) * 1000.0
    if r.latencies is not None:
        e2e = np.asarray(r.latencies, dtype=np.float64) * 1000.0
    else:  # older versions: the latency is the first chunk's time plus every gap after it
        e2e = ttft + np.array([g.sum() for g in gaps])
    errors: dict[str, int] = {}
    for message, good in zip(r.errors, ok, strict=True):
        if not good:
            cls = error_class_of_text(message)
            errors[cls] = errors.get(cls, 0) + 1
    return RequestTimes(
        ok=ok,
        ttft_ms=np.where(ok, ttft, np.nan),
        e2e_ms=np.where(ok, e2e, np.nan),
        output_tokens=lens,
        duration_s=r.duration,
        errors_by_class=errors,
        chunk_gaps_ms=gaps,
    )


def _summary_metrics(r: VllmResult) -> dict[str, MetricStats | None]:
    def latency(metric: str, field: str) -> MetricStats | None:
        if not r.completed:  # vLLM writes 0 for the latencies of a run in which every request failed
            return None
        mean = getattr(r, f"mean_{metric}_ms")
        stats = r.percentiles(metric)
        if mean is None and not stats:
            return None
        return summary_stats(mapping(Tool.VLLM, field), mean=mean, n=r.completed, percentiles=stats)

    n = r.completed + r.failed
    out_item = mapping(Tool.VLLM, "output_throughput")
    req_item = mapping(Tool.VLLM, "request_throughput")
    err_item = mapping(Tool.VLLM, "completed, failed")
    if r.failed == 0:
        requests = rate_stats(r.request_throughput, n, Provenance.SUMMARY, mapped_note(req_item))
    else:
        requests = rate_stats(n / r.duration, n, Provenance.CONVERTED, mapped_note(req_item))
    return {
        "ttft": latency("ttft", "mean/median/pNN_ttft_ms"),
        "tpot": latency("tpot", "mean/median/pNN_tpot_ms"),
        "e2e": latency("e2el", "mean/median/pNN_e2el_ms"),
        "output_tokens_per_s": rate_stats(r.output_throughput, n, Provenance.SUMMARY, mapped_note(out_item))
        if r.output_throughput is not None
        else None,
        "requests_per_s": requests,
        "error_rate": share_stats(r.failed, n, Provenance.SUMMARY, mapped_note(err_item)),
    }


def _results(doc: Document) -> list[VllmResult]:
    values = doc.data if isinstance(doc.data, list) else [doc.data]
    if not values:
        raise UserError(f"{doc.path}: not a vllm bench serve result (an empty list; expected one result object)")
    out = []
    for i, value in enumerate(values):
        try:
            out.append(VllmResult.model_validate(value))
        except ValidationError as exc:
            where = f"line {i + 1}: " if doc.syntax == "jsonl" else ""
            raise UserError(
                f"{doc.path}: {where}not a vllm bench serve result ({describe_validation_error(exc)})"
            ) from None
    return out


def _is_result(value: object) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("completed"), int)
        and isinstance(value.get("duration"), int | float)
        and isinstance(value.get("request_throughput"), int | float)
    )


@Importer.register
class VllmImporter(Importer):
    format = "vllm"
    tool = Tool.VLLM
    describes = "a vllm bench serve --save-result JSON"

    @classmethod
    def detect(cls, doc: Document) -> bool:
        if isinstance(doc.data, list):
            return doc.syntax == "jsonl" and all(_is_result(v) for v in doc.data)
        return _is_result(doc.data)

    def read(self, doc: Document, name: str, records: Path | None) -> Imported:
        steps: list[Step] = []
        samples: dict[str, StepSamples] = {}
        warnings: list[str] = []
        taken: set[str] = set()
        results = _results(doc)
        for r in results:
            wanted, load = load_of(r)
            step_name = unique_name(wanted, taken)
            times = _times(r)
            if times is not None:
                figures = samples_of(times, self.tool)
                steps.append(records_step(step_name, load, figures, dict(times.errors_by_class)))
                samples[step_name] = figures.samples
                warnings += [f"step {step_name}: {w}" for w in figures.warnings]
                continue
            warnings.append(
                f"step {step_name}: no per-request data (run with --save-detailed for it); vLLM's aggregates "
                "only, and its per-chunk ITL is left out"
            )
            steps.append(
                summary_step(
                    step_name,
                    load,
                    _summary_metrics(r),
                    requests=r.completed + r.failed,
                    errors=r.failed,
                    duration_s=r.duration,
                )
            )
        first = results[0]
        target = TargetInfo(kind=first.backend, model=first.model_id)
        baseline = self.baseline(doc, name, steps, version=None, target=target, warnings=warnings)
        return Imported(baseline, samples, {f"source-{doc.path.name}": doc.path})
