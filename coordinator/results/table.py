"""``summary.csv``: the summary flattened to one row per (phase, workload), for spreadsheets."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from coordinator.results.summary import ALL, SUMMARY_LATENCIES

_STAT_KEYS = ("p50", "p90", "p95", "p99", "p99.9", "mean")
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


def header() -> list[str]:
    cols = ["phase", "workload", *_COUNT_KEYS, "goodput_requests", "goodput_share", "goodput_per_s"]
    for name in SUMMARY_LATENCIES:
        cols.extend(f"{name}_{k}_ms" for k in _STAT_KEYS)
    cols.append("errors_by_class")
    return cols


def _row(phase: str, workload: str, group: dict[str, Any]) -> list[Any]:
    good = group["goodput"]
    row: list[Any] = [phase, workload, *(group[k] for k in _COUNT_KEYS)]
    row.extend([good["requests"], good["share"], good["per_s"]])
    for name in SUMMARY_LATENCIES:
        stats = group["latency_ms"][name]
        row.extend(stats[k] for k in _STAT_KEYS)
    row.append(";".join(f"{k}={v}" for k, v in group["errors_by_class"].items()))
    return ["" if v is None else v for v in row]


def rows(summary: dict[str, Any]) -> list[list[Any]]:
    """Every row: each phase (workload ``all`` then each workload), then the whole run."""
    out: list[list[Any]] = []
    for phase in summary["phases_order"]:
        group = summary["phases"][phase]
        out.append(_row(phase, ALL, group))
        for workload, sub in group["workloads"].items():
            out.append(_row(phase, workload, sub))
    overall = summary[ALL]
    out.append(_row(ALL, ALL, overall))
    for workload, sub in overall["workloads"].items():
        out.append(_row(ALL, workload, sub))
    return out


def write_csv(summary: dict[str, Any], path: Path) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header())
        writer.writerows(rows(summary))
    return path
