"""Other tools' metrics in finishline's definitions: the one place they are reconciled.

Tools use the same names for different things. GuideLLM's ``time_per_output_token_ms`` counts
the first token (request start to last token, over every token), so it is not finishline's
TPOT; GuideLLM's and AIPerf's ``inter_token_latency`` is (the decode time) / (tokens - 1), which
*is* finishline's TPOT; vLLM's and AIPerf's ITL is one value per chunk, finishline's one per
token; GuideLLM writes ``request_latency`` in seconds. So a figure is mapped by its definition,
never by its name, and this module says for every field an importer reads which finishline
metric it is and how it gets there (:data:`MAPPINGS`; ``docs/baselines.md`` has the same table).

Where a file has per-request data, finishline's definitions (``loadgen/metrics.py``) are applied
to it afresh (:class:`RequestTimes` -> :func:`samples_of` -> :func:`metrics_of`), whatever the
tool's own aggregates say: TTFT, E2E, TPOT = (E2E - TTFT) / (output tokens - 1), ITL per token,
and the rates over the tool's measured duration. Where a file has summaries only, only the
figures that mean the same are kept (:func:`summary_stats`) and the rest is left absent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus

import numpy as np
import numpy.typing as npt

from coordinator.baselines.model import MetricStats, Provenance, Tool
from coordinator.baselines.samples import StepSamples
from coordinator.results.summary import percentile_field
from loadgen import metrics
from loadgen.records import ErrorClass

Floats = npt.NDArray[np.float64]

STAT_FIELDS: tuple[str, ...] = tuple(percentile_field(p) for p in metrics.PERCENTILES)  # p50 ... p99_9


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """One field of another tool's file: the finishline metric it is (``None``: none) and how."""

    tool: Tool
    field: str
    metric: str | None
    provenance: Provenance | None  # of the figure when the file has summaries only
    rule: str


_G, _V, _A = Tool.GUIDELLM, Tool.VLLM, Tool.AIPERF
MAPPINGS: tuple[FieldMapping, ...] = (
    # GuideLLM benchmarks.json: per request under benchmarks[i].requests, timings in wall-clock seconds
    FieldMapping(_G, "requests[].info.timings", "ttft, e2e, tpot", Provenance.RECORDS,
                 "per request: TTFT = first_token_iteration - request_start, E2E = request_end - request_start, "
                 "TPOT = (E2E - TTFT) / (output_tokens - 1)"),
    FieldMapping(_G, "requests[].info.timings (first/last token)", "itl", Provenance.RECORDS,
                 "mean only: sum of (last_token_iteration - first_token_iteration) / sum of (output_tokens - 1), "
                 "when every token came in its own iteration; the file has no per-token times, so no percentiles"),
    FieldMapping(_G, "time_to_first_token_ms", "ttft", Provenance.SUMMARY, "same definition, ms"),
    FieldMapping(_G, "inter_token_latency_ms", "tpot", Provenance.SUMMARY,
                 "(last token - first token) / (output tokens - 1): finishline's TPOT (which ends at the "
                 "response's end, not its last token)"),
    FieldMapping(_G, "time_per_output_token_ms", None, None,
                 "not mapped: (last token - request start) / output tokens includes the first token, so it is "
                 "neither TPOT nor ITL"),
    FieldMapping(_G, "request_latency", "e2e", Provenance.CONVERTED, "seconds in GuideLLM, times 1000"),
    FieldMapping(_G, "output_tokens_per_second", "output_tokens_per_s", Provenance.SUMMARY,
                 "its mean (output tokens of successful requests / the benchmark's duration)"),
    FieldMapping(_G, "requests_per_second", "requests_per_s", Provenance.SUMMARY,
                 "the mean of its `total` (every request / the benchmark's duration)"),
    FieldMapping(_G, "request_totals", "error_rate", Provenance.SUMMARY, "(errored + incomplete) / total"),
    # vllm bench serve --save-result
    FieldMapping(_V, "ttfts, latencies, output_lens (--save-detailed)", "ttft, e2e, tpot", Provenance.RECORDS,
                 "per request, seconds: TTFT = ttfts, E2E = latencies, TPOT = (E2E - TTFT) / (output_lens - 1); "
                 "failed requests are those with an error"),
    FieldMapping(_V, "itls (--save-detailed)", "itl", Provenance.RECORDS,
                 "per chunk in vLLM: per token only when every request's chunks carried one token each "
                 "(len(itls[i]) = output_lens[i] - 1); otherwise ITL is absent"),
    FieldMapping(_V, "mean/median/pNN_ttft_ms", "ttft", Provenance.SUMMARY, "same definition; median is p50"),
    FieldMapping(_V, "mean/median/pNN_tpot_ms", "tpot", Provenance.SUMMARY, "same definition (excl. 1st token)"),
    FieldMapping(_V, "mean/median/pNN_e2el_ms", "e2e", Provenance.SUMMARY, "same definition"),
    FieldMapping(_V, "mean/median/pNN_itl_ms", None, None,
                 "not mapped without per-request data: one value per chunk, not per token"),
    FieldMapping(_V, "output_throughput", "output_tokens_per_s", Provenance.SUMMARY,
                 "output tokens of successful requests / duration"),
    FieldMapping(_V, "request_throughput", "requests_per_s", Provenance.SUMMARY,
                 "completed / duration: finishline's when none failed, else (completed + failed) / duration "
                 "(converted)"),
    FieldMapping(_V, "completed, failed", "error_rate", Provenance.SUMMARY, "failed / (completed + failed)"),
    # AIPerf profile_export_aiperf.json and its per-request profile_export.jsonl
    FieldMapping(_A, "records: time_to_first_token, request_latency, output_sequence_length", "ttft, e2e, tpot",
                 Provenance.RECORDS, "per request, ms: TPOT = (request_latency - TTFT) / (output_sequence_length - 1)"),
    FieldMapping(_A, "records: inter_chunk_latency", "itl", Provenance.RECORDS,
                 "per chunk in AIPerf: per token only when every request's chunks carried one token each; "
                 "otherwise ITL is absent"),
    FieldMapping(_A, "time_to_first_token", "ttft", Provenance.SUMMARY, "same definition, ms"),
    FieldMapping(_A, "inter_token_latency", "tpot", Provenance.SUMMARY,
                 "(request_latency - TTFT) / (output tokens - 1): finishline's TPOT"),
    FieldMapping(_A, "inter_chunk_latency", None, None, "not mapped without records: one value per chunk"),
    FieldMapping(_A, "request_latency", "e2e", Provenance.SUMMARY, "same definition, ms"),
    FieldMapping(_A, "output_token_throughput", "output_tokens_per_s", Provenance.SUMMARY,
                 "output tokens / benchmark duration"),
    FieldMapping(_A, "request_throughput", "requests_per_s", Provenance.SUMMARY,
                 "successful requests / duration: kept only when no request failed"),
    FieldMapping(_A, "request_count, error_summary", "error_rate", Provenance.SUMMARY,
                 "errors / (requests + errors)"),
)  # fmt: skip


def mapping(tool: Tool, field: str) -> FieldMapping:
    """The mapping of one field (a ``KeyError`` is a bug: every field an importer reads is listed)."""
    for item in MAPPINGS:
        if item.tool is tool and item.field == field:
            return item
    raise KeyError(f"{tool.value}: no mapping for {field!r}")


def mapped_note(item: FieldMapping) -> str:
    return f"{item.tool.value} {item.field}: {item.rule}"


_STATUS = re.compile(r"\b([45]\d\d)\b")


_PHRASES = {status.phrase.lower(): status.value for status in HTTPStatus}


def error_class_of_text(message: str | None) -> str:
    """:func:`error_class` of an error message that names an HTTP status by number (``500 Internal
    Server Error``) or is its reason phrase alone (``Too Many Requests``, as vLLM's benchmark writes)."""
    text = (message or "").strip()
    found = _STATUS.search(text)
    return error_class(int(found.group(1)) if found else _PHRASES.get(text.lower()))


def error_class(status: int | None) -> str:
    """Another tool's failed request, as one of finishline's error classes where its HTTP status tells."""
    if status == 429:
        return ErrorClass.HTTP_429.value
    if status is not None and 400 <= status < 500:
        return ErrorClass.HTTP_4XX.value
    if status is not None and 500 <= status < 600:
        return ErrorClass.HTTP_5XX.value
    return "unclassified"


@dataclass(frozen=True, slots=True, eq=False)
class RequestTimes:
    """One step's requests as another tool measured them, before finishline's definitions are applied.

    Every array has one entry per request; latencies in ms, NaN where the file has none (a failed
    request). ``chunk_gaps_ms``: per request, the gaps between its token-bearing chunks after the
    first, where the file has them; ``decode_ms`` and ``chunks``: per request, last token minus
    first token and the token-bearing chunks, where the file has those instead.
    """

    ok: npt.NDArray[np.bool_]
    ttft_ms: Floats
    e2e_ms: Floats
    output_tokens: Floats
    duration_s: float | None
    errors_by_class: Mapping[str, int]
    chunk_gaps_ms: Sequence[Floats] | None = None
    decode_ms: Floats | None = None
    chunks: Floats | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Recomputed:
    """A step's per-request values in finishline's definitions, and its figures."""

    samples: StepSamples
    metrics: dict[str, MetricStats]
    warnings: list[str]


def _one_token_per_chunk(times: RequestTimes) -> tuple[bool, int]:
    """Whether every successful request's chunks carried one token each (and how many did not)."""
    tokens = times.output_tokens[times.ok]
    if times.chunk_gaps_ms is not None:
        gaps = [g for g, ok in zip(times.chunk_gaps_ms, times.ok, strict=True) if ok]
        bad = sum(1 for g, n in zip(gaps, tokens, strict=True) if g.size + 1 != n)
    elif times.chunks is not None:
        bad = int((times.chunks[times.ok] != tokens).sum())
    else:
        return False, int(tokens.size)
    return bad == 0, bad


def latency_stats(values_ms: Floats, provenance: Provenance, note: str | None = None) -> MetricStats:
    """Mean and the summary's percentiles of the finite values, as finishline's summary computes them."""
    finite = values_ms[np.isfinite(values_ms)]
    if not finite.size:
        return MetricStats(unit="ms", n=0, provenance=provenance, note=note)
    qs = np.percentile(finite, list(metrics.PERCENTILES))
    fields = {name: float(q) for name, q in zip(STAT_FIELDS, qs, strict=True)}
    return MetricStats(
        unit="ms", n=int(finite.size), mean=float(finite.mean()), provenance=provenance, note=note, **fields
    )


def rate_stats(value: float | None, n: int | None, provenance: Provenance, note: str | None = None) -> MetricStats:
    return MetricStats(unit="per_s", n=n, mean=value, provenance=provenance, note=note)


def share_stats(errors: int, requests: int, provenance: Provenance, note: str | None = None) -> MetricStats:
    return MetricStats(
        unit="share", n=requests, mean=(errors / requests) if requests else None, provenance=provenance, note=note
    )


def samples_of(times: RequestTimes, tool: Tool) -> Recomputed:
    """finishline's definitions applied to another tool's per-request values."""
    ok = times.ok
    ttft = times.ttft_ms[ok]
    e2e = times.e2e_ms[ok]
    tokens = times.output_tokens[ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        tpot = np.where(tokens >= 2, (e2e - ttft) / (tokens - 1), np.nan)
    warnings: list[str] = []
    per_token, bad = _one_token_per_chunk(times)
    itl = np.empty(0, dtype=np.float64)
    itl_stats: MetricStats | None = None
    if per_token and times.chunk_gaps_ms is not None:
        kept = [g for g, good in zip(times.chunk_gaps_ms, ok, strict=True) if good]
        itl = np.concatenate(kept) if kept else itl
        itl_stats = latency_stats(itl, Provenance.RECORDS)
    elif per_token and times.decode_ms is not None:
        spans = times.decode_ms[ok]
        counts = tokens - 1
        use = np.isfinite(spans) & (counts >= 1)
        n = int(counts[use].sum())
        mean = float(spans[use].sum() / n) if n else None
        itl_stats = MetricStats(
            unit="ms",
            n=n,
            mean=mean,
            provenance=Provenance.RECORDS,
            note=f"mean only: {tool.value}'s file has each request's first and last token times, not every token's",
        )
    elif bad:
        warnings.append(
            f"ITL left out: for {bad} request{'s' if bad != 1 else ''} {tool.value}'s file does not show one token "
            "per chunk, and finishline's per-token ITL needs to know how many tokens each chunk carried"
        )
    samples = StepSamples(
        ttft=ttft,
        tpot=tpot,
        e2e=e2e,
        itl=itl,
        ok=ok,
        output_tokens=np.where(ok, times.output_tokens, 0.0),
        duration_s=times.duration_s,
    )
    requests = int(ok.size)
    errors = requests - int(ok.sum())
    duration = times.duration_s

    def per_s(x: float) -> float | None:
        return x / duration if duration else None

    figures = {
        "ttft": latency_stats(ttft, Provenance.RECORDS),
        "tpot": latency_stats(tpot, Provenance.RECORDS),
        "e2e": latency_stats(e2e, Provenance.RECORDS),
        "output_tokens_per_s": rate_stats(per_s(float(tokens.sum())), requests, Provenance.RECORDS),
        "requests_per_s": rate_stats(per_s(float(requests)), requests, Provenance.RECORDS),
        "error_rate": share_stats(errors, requests, Provenance.RECORDS),
    }
    if itl_stats is not None:
        figures["itl"] = itl_stats
    return Recomputed(samples, dict(sorted(figures.items())), warnings)


def summary_stats(
    item: FieldMapping,
    *,
    scale: float = 1.0,
    mean: float | None = None,
    n: int | None = None,
    percentiles: Mapping[str, float] | None = None,
) -> MetricStats:
    """A tool's own aggregate of a latency that means what finishline's does (``percentiles`` keyed
    ``p50`` ... ``p99_9``; the ones the file lacks stay absent), in ms (``scale``: from its unit)."""
    assert item.metric is not None and item.provenance is not None, item
    values = {k: v * scale for k, v in (percentiles or {}).items() if k in STAT_FIELDS}
    return MetricStats(
        unit="ms",
        n=n,
        mean=None if mean is None else mean * scale,
        provenance=item.provenance,
        note=mapped_note(item),
        **values,
    )
