"""Records -> metric increments, with the definitions of ``loadgen.metrics`` and nothing else.

An aggregate is a flat ``{field: value}`` map. A field names one Prometheus sample:

- ``c<US>name<US>labels``: a counter,
- ``b<US>metric<US>labels<US>i``: the count of histogram bucket ``i`` (non-cumulative; the last
  index is ``+Inf``),
- ``s<US>metric<US>labels``: a histogram's sum.

``labels`` are the record's (scenario, workload, phase, target, outcome) joined by ``<RS>``;
the run is the bridge's own. Flat fields let Redis ``HINCRBYFLOAT`` them and let several
bridges' aggregates add up.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np

from loadgen import metrics
from loadgen.records import OK, RequestRecord

US = "\x1f"  # separates the parts of a field
RS = "\x1e"  # separates label values
LABEL_NAMES: tuple[str, ...] = tuple(n for n in metrics.PROM_LABELS if n != "run")
REQUEST_HISTOGRAMS: tuple[str, ...] = ("ttft", "ttfot", "tpot", "e2e", "dispatch_delay", "retry_wait")


def label_key(*values: str) -> str:
    return RS.join(values)


def split_labels(key: str) -> list[str]:
    return key.split(RS)


def bucket_index(buckets: tuple[float, ...], value: float) -> int:
    """Index of the first bucket whose upper bound ``le`` is >= value (Prometheus semantics)."""
    return bisect_left(buckets, value)


def record_increments(
    record: RequestRecord,
    scenario: str,
    slo: metrics.SloRule,
    out: dict[str, float],
    itl: dict[str, list[float]] | None = None,
) -> None:
    """Add one record's increments to ``out``.

    ITL has one value per output token; pass ``itl`` to collect them per label set and
    bucket a whole batch at once with :func:`add_itl` (much cheaper), else they are bucketed now.
    """
    base = (scenario, record.workload, record.phase, record.target)
    outcome = record.outcome
    lk = label_key(*base, outcome)

    def inc(field: str, value: float) -> None:
        out[field] = out.get(field, 0.0) + value

    inc(f"c{US}requests{US}{lk}", 1.0)
    if outcome != OK:
        inc(f"c{US}errors{US}{lk}", 1.0)
    last = len(record.attempts) - 1
    for i, attempt in enumerate(record.attempts):
        alk = label_key(*base, attempt.error or OK)
        inc(f"c{US}attempts{US}{alk}", 1.0)
        if i < last:
            inc(f"c{US}retries{US}{alk}", 1.0)
    if not record.attempts:
        return
    inc(f"c{US}prompt_tokens{US}{lk}", float(metrics.prompt_tokens(record)))
    inc(f"c{US}output_tokens{US}{lk}", float(metrics.output_tokens(record)))
    inc(f"c{US}reasoning_tokens{US}{lk}", float(metrics.reasoning_tokens(record)))  # 0 too: the series exists
    values = metrics.request_values(record)
    values["ttfot"] = metrics.ttfot(record.final)
    if slo.good(record, values):
        inc(f"c{US}good_requests{US}{lk}", 1.0)
    for name in REQUEST_HISTOGRAMS:
        value = values[name]
        if value is None:
            continue
        buckets = metrics.PROM_HISTOGRAMS[name][1]
        inc(f"b{US}{name}{US}{lk}{US}{bucket_index(buckets, value)}", 1.0)
        inc(f"s{US}{name}{US}{lk}", value)
    gaps = list(metrics.itl(record.final))
    if not gaps:
        return
    if itl is None:
        add_itl(out, {lk: gaps})
    else:
        itl.setdefault(lk, []).extend(gaps)


def add_itl(out: dict[str, float], itl: dict[str, list[float]]) -> None:
    """Bucket per-token ITL values (per label set) into ``out`` with Prometheus' ``le`` rule."""
    bounds = np.asarray(metrics.PROM_HISTOGRAMS["itl"][1])
    for lk, gaps in itl.items():
        if not gaps:
            continue
        arr = np.asarray(gaps, dtype=float)
        counts = np.bincount(np.searchsorted(bounds, arr, side="left"), minlength=len(bounds) + 1)
        for i in np.flatnonzero(counts):
            field = f"b{US}itl{US}{lk}{US}{int(i)}"
            out[field] = out.get(field, 0.0) + float(counts[i])
        field = f"s{US}itl{US}{lk}"
        out[field] = out.get(field, 0.0) + float(arr.sum())


def merge(into: dict[str, float], delta: dict[str, float]) -> None:
    for field, value in delta.items():
        into[field] = into.get(field, 0.0) + value
