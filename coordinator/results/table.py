"""``summary.csv``: the summary flattened to one row per (phase, workload), for spreadsheets.

The last column, ``attempts_by_class``, is there when the summary counts attempts by class
(every summary written since it does), and the answer's columns (``reasoning_tokens``,
``answer_tokens``, then ``ttfot``, ``tpot_answer`` and ``itl_answer`` as the other latencies,
after them) when it has those; a summary written before has neither, and its CSV is exactly
what it was.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from coordinator.results.summary import ALL, GroupSummary, Summary, percentile_field
from loadgen import metrics

# (column suffix, LatencyStats attribute) of each latency: p50 ... p99.9, then the mean
_STATS: tuple[tuple[str, str], ...] = (
    *((f"p{p:g}", percentile_field(p)) for p in metrics.PERCENTILES),
    ("mean", "mean"),
)
_COUNT_KEYS = (
    "count",
    "ok",
    "errors",
    "retries",
    "attempts",
    "duration_s",
    "requests_per_s",
    "ok_requests_per_s",
    "output_tokens",
    "output_tokens_per_s",
)


def header(attempts: bool = True, answer: bool = True) -> list[str]:
    """The columns; ``attempts``: with ``attempts_by_class``, ``answer``: with the answer's (see the
    module's docstring)."""
    cols = ["phase", "workload", *_COUNT_KEYS, "goodput_requests", "goodput_share", "goodput_per_s"]
    for name in metrics.LATENCY_METRICS:
        cols.extend(f"{name}_{label}_ms" for label, _ in _STATS)
    if answer:
        cols += ["reasoning_tokens", "answer_tokens"]
        for name in metrics.ANSWER_METRICS:
            cols.extend(f"{name}_{label}_ms" for label, _ in _STATS)
    cols.append("errors_by_class")
    if attempts:
        cols.append("attempts_by_class")
    return cols


def _classes(counts: dict[str, int]) -> str:
    return ";".join(f"{k}={v}" for k, v in counts.items())


def _counts_attempts(summary: Summary) -> bool:
    return summary.all.attempts_by_class is not None


def _has_answer(summary: Summary) -> bool:
    return summary.all.latency_ms_answer is not None


def _row(phase: str, workload: str, group: GroupSummary, attempts: bool, answer: bool) -> list[Any]:
    good = group.goodput
    row: list[Any] = [phase, workload, *(getattr(group, k) for k in _COUNT_KEYS)]
    row.extend([good.requests, good.share, good.per_s])
    for name in metrics.LATENCY_METRICS:
        stats = group.latency_ms.get(name)
        row.extend(getattr(stats, attr) for _, attr in _STATS)
    if answer:
        row += [group.reasoning_tokens, group.answer_tokens]
        latencies = group.latency_ms_answer
        for name in metrics.ANSWER_METRICS:
            answer_stats = latencies.get(name) if latencies is not None else None
            row.extend(None if answer_stats is None else getattr(answer_stats, attr) for _, attr in _STATS)
    row.append(_classes(group.errors_by_class))
    if attempts:
        row.append(_classes(group.attempts_by_class or {}))
    return ["" if v is None else v for v in row]


def rows(summary: Summary) -> list[list[Any]]:
    """Every row: each phase (workload ``all`` then each workload), then the whole run."""
    attempts, answer = _counts_attempts(summary), _has_answer(summary)
    out: list[list[Any]] = []
    for phase in summary.phases_order:
        group = summary.phases[phase]
        out.append(_row(phase, ALL, group, attempts, answer))
        for workload, sub in group.workloads.items():
            out.append(_row(phase, workload, sub, attempts, answer))
    overall = summary.all
    out.append(_row(ALL, ALL, overall, attempts, answer))
    for workload, sub in overall.workloads.items():
        out.append(_row(ALL, workload, sub, attempts, answer))
    return out


def write_csv(summary: Summary, path: Path) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header(_counts_attempts(summary), _has_answer(summary)))
        writer.writerows(rows(summary))
    return path
