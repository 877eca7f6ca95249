"""AIPerf's ``profile_export_aiperf.json``, with its per-request ``profile_export.jsonl`` when it
lies beside it (or is given with ``--records``): one step, the profiling phase.

With the per-request file, finishline's definitions are computed from each record's
``time_to_first_token``, ``request_latency``, ``output_sequence_length`` and
``inter_chunk_latency`` (warm-up records left out). Without it, only AIPerf's aggregates that
mean what finishline's do are kept: its ``inter_token_latency`` is finishline's TPOT, its
``inter_chunk_latency`` (one value per chunk) is left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import Field, ValidationError

from coordinator.baselines.definitions import (
    Floats,
    RequestTimes,
    error_class,
    mapped_note,
    mapping,
    rate_stats,
    samples_of,
    share_stats,
    summary_stats,
)
from coordinator.baselines.importers.document import Document, FileModel, OnRead, read_lines
from coordinator.baselines.importers.registry import Imported, Importer, records_step, summary_step
from coordinator.baselines.model import Load, LoadKind, MetricStats, Provenance, Step, TargetInfo, Tool
from coordinator.baselines.samples import StepSamples
from loadgen.errors import UserError, describe_validation_error
from loadgen.records import ErrorClass

RECORDS_BESIDE = "profile_export.jsonl"
_MS = {"ms": 1.0, "s": 1000.0, "sec": 1000.0, "us": 1e-3, "ns": 1e-6}


_In = FileModel  # a part of the file: the fields read


class Stat(_In):
    """One of AIPerf's aggregates: ``avg`` and the percentiles it reports (no p99.9)."""

    unit: str | None = None
    avg: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    count: int | None = None

    def stats(self) -> dict[str, float]:
        return {k: v for k in ("p50", "p90", "p95", "p99") if (v := getattr(self, k)) is not None}


class Phase(_In):
    kind: str | None = None
    type: str | None = None
    concurrency: int | None = None
    request_rate: float | None = None


class Endpoint(_In):
    urls: list[str] = Field(default_factory=list)
    type: str | None = None


class ModelName(_In):
    name: str


class Models(_In):
    items: list[ModelName] = Field(default_factory=list)


class InputConfig(_In):
    models: Models | None = None
    endpoint: Endpoint | None = None
    phases: list[Phase] = Field(default_factory=list)


class ErrorCount(_In):
    count: int = Field(default=0, ge=0)


class AiperfSummary(_In):
    aiperf_version: str | None = None
    time_to_first_token: Stat | None = None
    inter_token_latency: Stat | None = None
    request_latency: Stat | None = None
    request_throughput: Stat | None = None
    output_token_throughput: Stat | None = None
    request_count: Stat | None = None
    benchmark_duration: Stat | None = None
    error_summary: list[ErrorCount] = Field(default_factory=list)
    input_config: InputConfig | None = None


class Value(_In):
    value: float | list[float] | None = None
    unit: str | None = None


class RecordMeta(_In):
    request_start_ns: int | None = None
    request_end_ns: int | None = None
    benchmark_phase: str | None = None
    was_cancelled: bool = False


class ErrorDetails(_In):
    code: int | None = None
    type: str | None = None


class Record(_In):
    metadata: RecordMeta
    metrics: dict[str, Value] = Field(default_factory=dict)
    error: ErrorDetails | None = None


def _scale(path: Path, where: str, unit: str | None) -> float:
    if unit is None:
        return 1.0
    if unit not in _MS:
        raise UserError(f"{path}: {where}.unit: unexpected unit {unit!r}; expected one of {', '.join(_MS)}")
    return _MS[unit]


def read_records(path: Path, on_read: OnRead | None = None) -> list[Record]:
    """AIPerf's per-request file, the profiling phase's records (warm-up ones left out)."""
    out = []
    for number, line in read_lines(path, on_read):
        try:
            record = Record.model_validate(json.loads(line))
        except ValueError as exc:
            detail = describe_validation_error(exc) if isinstance(exc, ValidationError) else "not JSON"
            raise UserError(f"{path}: line {number}: not an AIPerf per-request record ({detail})") from None
        if record.metadata.benchmark_phase in (None, "profiling"):
            out.append(record)
    return out


def _times(path: Path, records: list[Record], duration_s: float | None) -> RequestTimes:
    def value(i: int, r: Record, name: str, time: bool = True) -> float:
        v = r.metrics.get(name)
        if v is None or v.value is None:
            return np.nan
        if isinstance(v.value, list):
            raise UserError(f"{path}: line {i + 1}: metrics.{name}.value: expected a number, not a list")
        return v.value * (_scale(path, f"line {i + 1}: metrics.{name}", v.unit) if time else 1.0)

    def gaps(i: int, r: Record) -> Floats:
        v = r.metrics.get("inter_chunk_latency")
        if v is None or v.value is None:
            return np.empty(0, dtype=np.float64)
        values = v.value if isinstance(v.value, list) else [v.value]
        return np.asarray(values, dtype=np.float64) * _scale(path, f"line {i + 1}: metrics.inter_chunk_latency", v.unit)

    ok = np.array([r.error is None and not r.metadata.was_cancelled for r in records], dtype=bool)
    tokens = np.array(
        [value(i, r, "output_sequence_length", time=False) for i, r in enumerate(records)], dtype=np.float64
    )
    errors: dict[str, int] = {}
    for r, good in zip(records, ok, strict=True):
        if not good:
            cls = (
                ErrorClass.CANCELLED.value
                if r.metadata.was_cancelled
                else error_class(r.error.code if r.error else None)
            )
            errors[cls] = errors.get(cls, 0) + 1
    if duration_s is None:
        starts = [r.metadata.request_start_ns for r in records if r.metadata.request_start_ns is not None]
        ends = [r.metadata.request_end_ns for r in records if r.metadata.request_end_ns is not None]
        duration_s = (max(ends) - min(starts)) / 1e9 if starts and ends else None
    return RequestTimes(
        ok=ok,
        ttft_ms=np.where(ok, [value(i, r, "time_to_first_token") for i, r in enumerate(records)], np.nan),
        e2e_ms=np.where(ok, [value(i, r, "request_latency") for i, r in enumerate(records)], np.nan),
        output_tokens=np.nan_to_num(tokens),
        duration_s=duration_s,
        errors_by_class=errors,
        chunk_gaps_ms=[gaps(i, r) for i, r in enumerate(records)],
    )


def load_of(config: InputConfig | None) -> tuple[str, Load | None]:
    phases = [p for p in (config.phases if config else []) if p.kind in (None, "profiling")]
    phase = phases[0] if phases else None
    if phase is not None and phase.concurrency is not None and phase.request_rate is None:
        return f"concurrency-{phase.concurrency}", Load(
            kind=LoadKind.CONCURRENCY, value=float(phase.concurrency), label=phase.type or "concurrency"
        )
    if phase is not None and phase.request_rate is not None:
        label = phase.type or "request_rate"
        if phase.concurrency is not None:
            label += f", max concurrency {phase.concurrency}"
        return f"rate-{phase.request_rate:g}", Load(kind=LoadKind.RATE, value=phase.request_rate, label=label)
    return "profiling", None


def _summary_metrics(doc: Document, s: AiperfSummary, requests: int, errors: int) -> dict[str, MetricStats | None]:
    def latency(field: str, stat: Stat | None) -> MetricStats | None:
        if stat is None or (stat.avg is None and not stat.stats()):
            return None
        scale = _scale(doc.path, field, stat.unit)
        return summary_stats(
            mapping(Tool.AIPERF, field), scale=scale, mean=stat.avg, n=stat.count, percentiles=stat.stats()
        )

    out_item = mapping(Tool.AIPERF, "output_token_throughput")
    req_item = mapping(Tool.AIPERF, "request_throughput")
    err_item = mapping(Tool.AIPERF, "request_count, error_summary")
    out = s.output_token_throughput.avg if s.output_token_throughput else None
    req = s.request_throughput.avg if s.request_throughput and errors == 0 else None
    return {
        "ttft": latency("time_to_first_token", s.time_to_first_token),
        "tpot": latency("inter_token_latency", s.inter_token_latency),
        "e2e": latency("request_latency", s.request_latency),
        "output_tokens_per_s": None
        if out is None
        else rate_stats(out, requests, Provenance.SUMMARY, mapped_note(out_item)),
        "requests_per_s": None if req is None else rate_stats(req, requests, Provenance.SUMMARY, mapped_note(req_item)),
        "error_rate": share_stats(errors, requests, Provenance.SUMMARY, mapped_note(err_item)),
    }


@Importer.register
class AiperfImporter(Importer):
    format = "aiperf"
    tool = Tool.AIPERF
    describes = "an AIPerf profile_export_aiperf.json"
    takes_records = True

    @classmethod
    def detect(cls, doc: Document) -> bool:
        data = doc.data
        if not isinstance(data, dict):
            return False
        ttft = data.get("time_to_first_token")
        return "aiperf_version" in data or ("input_config" in data and isinstance(ttft, dict) and "unit" in ttft)

    def read(self, doc: Document, name: str, records: Path | None) -> Imported:
        summary = doc.validate(AiperfSummary, self.describes)
        step_name, load = load_of(summary.input_config)
        span = summary.benchmark_duration
        duration = None
        if span is not None and span.avg is not None:
            duration = span.avg * _scale(doc.path, "benchmark_duration", span.unit) / 1000.0
        errors = sum(e.count for e in summary.error_summary)
        ok = int(summary.request_count.avg or 0) if summary.request_count else 0
        if records is None and (doc.path.parent / RECORDS_BESIDE).is_file():
            records = doc.path.parent / RECORDS_BESIDE
        sources = {f"source-{doc.path.name}": doc.path}
        samples: dict[str, StepSamples] = {}
        warnings: list[str] = []
        step: Step
        kept = read_records(records, self.on_read) if records is not None else []
        if records is not None and kept:
            if summary.request_count is not None and len(kept) not in (ok, ok + errors):
                raise UserError(
                    f"{records}: {len(kept)} profiling records, but {doc.path} counts {ok} requests and "
                    f"{errors} errors; give the per-request file of the same run"
                )
            times = _times(records, kept, duration)
            figures = samples_of(times, self.tool)
            step = records_step(step_name, load, figures, dict(times.errors_by_class))
            samples[step_name] = figures.samples
            warnings += [f"step {step_name}: {w}" for w in figures.warnings]
            sources[f"source-{records.name}"] = records
        else:
            missing = (
                f"{records} has no profiling records"
                if records is not None
                else f"no per-request file ({RECORDS_BESIDE} beside it, or --records)"
            )
            warnings.append(f"step {step_name}: {missing}; AIPerf's aggregates only, and its per-chunk ITL is left out")
            step = summary_step(
                step_name,
                load,
                _summary_metrics(doc, summary, ok + errors, errors),
                requests=ok + errors,
                errors=errors,
                duration_s=duration,
            )
        config = summary.input_config
        target = TargetInfo(
            kind=config.endpoint.type if config and config.endpoint else None,
            base_url=config.endpoint.urls[0] if config and config.endpoint and config.endpoint.urls else None,
            model=config.models.items[0].name if config and config.models and config.models.items else None,
        )
        baseline = self.baseline(doc, name, [step], version=summary.aiperf_version, target=target, warnings=warnings)
        return Imported(baseline, samples, sources)
