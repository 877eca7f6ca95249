"""GuideLLM's ``benchmarks.json`` (``guidellm run ... --output kind=json``, version 0.8): every
benchmark in the file is one step, named and labelled after its scheduling strategy.

Each benchmark keeps its requests under ``requests.successful``/``errored``/``incomplete``, with
wall-clock ``info.timings`` in seconds; finishline's definitions are computed from those
(:mod:`coordinator.baselines.definitions`). A benchmark whose file keeps only a sample of its
requests (GuideLLM's ``--sample-requests``) or none is imported from its aggregates instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from coordinator.baselines.definitions import (
    Floats,
    RequestTimes,
    error_class_of_text,
    mapped_note,
    mapping,
    rate_stats,
    samples_of,
    share_stats,
    summary_stats,
)
from coordinator.baselines.importers.document import Document, FileModel
from coordinator.baselines.importers.registry import (
    Imported,
    Importer,
    records_step,
    summary_step,
    unique_name,
)
from coordinator.baselines.model import Load, LoadKind, MetricStats, Step, TargetInfo, Tool
from coordinator.baselines.samples import StepSamples
from loadgen.records import ErrorClass

_In = FileModel  # a part of the file: the fields read


class Timings(_In):
    request_start: float | None = None
    first_token_iteration: float | None = None
    last_token_iteration: float | None = None
    request_end: float | None = None
    token_iterations: int | None = None


class RequestInfo(_In):
    timings: Timings
    error: str | None = None


class Request(_In):
    info: RequestInfo
    output_tokens: int | None = None


class Requests(_In):
    successful: list[Request] = Field(default_factory=list)
    errored: list[Request] = Field(default_factory=list)
    incomplete: list[Request] = Field(default_factory=list)


class Distribution(_In):
    mean: float | None = None
    count: int | None = None
    percentiles: dict[str, float | None] = Field(default_factory=dict)  # p001 ... p50 ... p999

    def stats(self) -> dict[str, float]:
        """Its percentiles under finishline's field names (p999 is p99_9)."""
        names = {"p50": "p50", "p90": "p90", "p95": "p95", "p99": "p99", "p999": "p99_9"}
        return {ours: v for theirs, ours in names.items() if (v := self.percentiles.get(theirs)) is not None}


class ByStatus(_In):
    successful: Distribution | None = None
    total: Distribution | None = None


class Totals(_In):
    successful: int = Field(ge=0)
    errored: int = Field(default=0, ge=0)
    incomplete: int = Field(default=0, ge=0)
    total: int = Field(ge=0)


class Metrics(_In):
    request_totals: Totals
    time_to_first_token_ms: ByStatus | None = None
    inter_token_latency_ms: ByStatus | None = None
    request_latency: ByStatus | None = None
    output_tokens_per_second: ByStatus | None = None
    requests_per_second: ByStatus | None = None


class Strategy(_In):
    type_: str
    streams: int | None = None
    rate: float | None = None
    max_concurrency: int | None = None


class Profile(_In):
    kind: str | None = None


class BenchmarkConfig(_In):
    strategy: Strategy
    profile: Profile | None = None


class Benchmark(_In):
    config: BenchmarkConfig
    metrics: Metrics
    requests: Requests | None = None
    duration: float | None = None


class Metadata(_In):
    guidellm_version: str | None = None


class Backend(_In):
    kind: str | None = None
    target: str | None = None
    model: str | None = None


class Spec(_In):
    backend: Backend | None = None


class ReportConfig(_In):
    spec: Spec | None = None


class Report(_In):
    metadata: Metadata | None = None
    config: ReportConfig | None = None
    benchmarks: list[Benchmark] = Field(min_length=1)


def load_of(config: BenchmarkConfig) -> tuple[str, Load]:
    """A benchmark's step name and load level, from its strategy (and its profile, when a sweep ran it)."""
    s = config.strategy
    kind = s.type_
    profile = config.profile.kind if config.profile and config.profile.kind else kind
    label = kind if profile in (kind, "async") else f"{profile}: {kind}"
    if kind == "synchronous":
        return "synchronous", Load(kind=LoadKind.SYNCHRONOUS, value=1.0, label=label)
    if kind == "concurrent":
        if s.streams is None:
            return "concurrent", Load(kind=LoadKind.CONCURRENCY, label=label)
        return f"concurrent-{s.streams}", Load(kind=LoadKind.CONCURRENCY, value=float(s.streams), label=label)
    if kind in ("constant", "poisson"):
        name = kind if s.rate is None else f"{kind}-{s.rate:g}"
        return name, Load(kind=LoadKind.RATE, value=s.rate, label=label)
    if kind == "throughput":
        value = float(s.max_concurrency) if s.max_concurrency is not None else None
        return "throughput", Load(kind=LoadKind.THROUGHPUT, value=value, label=label)
    return kind, Load(kind=LoadKind.RATE, value=s.rate, label=label)  # trace replay and kinds to come


def _times(bench: Benchmark, requests: Requests) -> RequestTimes:
    everyone = [*requests.successful, *requests.errored, *requests.incomplete]
    ok = np.array([True] * len(requests.successful) + [False] * (len(everyone) - len(requests.successful)))

    def column(get: list[float | None] | list[int | None]) -> Floats:
        return np.array([np.nan if v is None else v for v in get], dtype=np.float64)

    t = [r.info.timings for r in everyone]
    start = column([x.request_start for x in t])
    first = column([x.first_token_iteration for x in t])
    last = column([x.last_token_iteration for x in t])
    end = column([x.request_end for x in t])
    tokens = column(
        [
            r.output_tokens if r.output_tokens is not None else x.token_iterations
            for r, x in zip(everyone, t, strict=True)
        ]
    )
    errors: dict[str, int] = {}
    for r in requests.errored:
        cls = error_class_of_text(r.info.error)
        errors[cls] = errors.get(cls, 0) + 1
    if requests.incomplete:
        errors[ErrorClass.CANCELLED.value] = len(requests.incomplete)
    duration = bench.duration
    if not duration:
        duration = float(np.nanmax(end) - np.nanmin(start)) if everyone else None
    return RequestTimes(
        ok=ok,
        ttft_ms=np.where(ok, (first - start) * 1000.0, np.nan),
        e2e_ms=np.where(ok, (end - start) * 1000.0, np.nan),
        output_tokens=np.nan_to_num(tokens),
        duration_s=duration,
        errors_by_class=errors,
        decode_ms=(last - first) * 1000.0,
        chunks=column([x.token_iterations for x in t]),
    )


def _summary_metrics(m: Metrics) -> dict[str, MetricStats | None]:
    """A benchmark's aggregates that mean what finishline's do (GuideLLM's TPOT field is not one)."""

    def latency(field: str, dist: ByStatus | None, scale: float = 1.0) -> MetricStats | None:
        d = dist.successful if dist else None
        if d is None or not d.count:
            return None
        return summary_stats(mapping(Tool.GUIDELLM, field), scale=scale, mean=d.mean, n=d.count, percentiles=d.stats())

    def rate(field: str, d: Distribution | None) -> MetricStats | None:
        item = mapping(Tool.GUIDELLM, field)
        if d is None or item.provenance is None:
            return None
        return rate_stats(d.mean, m.request_totals.total, item.provenance, mapped_note(item))

    totals = m.request_totals
    item = mapping(Tool.GUIDELLM, "request_totals")
    assert item.provenance is not None
    return {
        "ttft": latency("time_to_first_token_ms", m.time_to_first_token_ms),
        "tpot": latency("inter_token_latency_ms", m.inter_token_latency_ms),
        "e2e": latency("request_latency", m.request_latency, scale=1000.0),
        "output_tokens_per_s": rate(
            "output_tokens_per_second", m.output_tokens_per_second.successful if m.output_tokens_per_second else None
        ),
        "requests_per_s": rate("requests_per_second", m.requests_per_second.total if m.requests_per_second else None),
        "error_rate": share_stats(totals.errored + totals.incomplete, totals.total, item.provenance, mapped_note(item)),
    }


@Importer.register
class GuideLLMImporter(Importer):
    format = "guidellm"
    tool = Tool.GUIDELLM
    describes = "a GuideLLM benchmarks.json"

    @classmethod
    def detect(cls, doc: Document) -> bool:
        data = doc.data
        if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
            return False
        meta = data.get("metadata")
        first = data["benchmarks"][0] if data["benchmarks"] else None
        return (isinstance(meta, dict) and "guidellm_version" in meta) or (
            isinstance(first, dict) and first.get("type_") == "generative_benchmark"
        )

    def read(self, doc: Document, name: str, records: Path | None) -> Imported:
        report = doc.validate(Report, self.describes)
        steps: list[Step] = []
        samples: dict[str, StepSamples] = {}
        warnings: list[str] = []
        taken: set[str] = set()
        for bench in report.benchmarks:
            wanted, load = load_of(bench.config)
            step_name = unique_name(wanted, taken)
            totals = bench.metrics.request_totals
            kept = bench.requests
            n_kept = len(kept.successful) + len(kept.errored) + len(kept.incomplete) if kept else 0
            if kept is not None and totals.total and n_kept == totals.total:
                times = _times(bench, kept)
                figures = samples_of(times, self.tool)
                steps.append(records_step(step_name, load, figures, dict(times.errors_by_class)))
                samples[step_name] = figures.samples
                warnings += [f"step {step_name}: {w}" for w in figures.warnings]
                continue
            if n_kept:
                warnings.append(
                    f"step {step_name}: the file keeps {n_kept} of its {totals.total} requests, so its figures are "
                    "GuideLLM's own aggregates (summary only)"
                )
            else:
                warnings.append(f"step {step_name}: no per-request data in the file; GuideLLM's aggregates only")
            steps.append(
                summary_step(
                    step_name,
                    load,
                    _summary_metrics(bench.metrics),
                    requests=totals.total,
                    errors=totals.errored + totals.incomplete,
                    duration_s=bench.duration,
                )
            )
        backend = report.config.spec.backend if report.config and report.config.spec else None
        target = TargetInfo(
            kind=backend.kind if backend else None,
            base_url=backend.target if backend else None,
            model=backend.model if backend else None,
        )
        version = report.metadata.guidellm_version if report.metadata else None
        baseline = self.baseline(doc, name, steps, version=version, target=target, warnings=warnings)
        return Imported(baseline, samples, {f"source-{doc.path.name}": doc.path})
