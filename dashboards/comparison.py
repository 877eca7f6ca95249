"""The comparison dashboard: a run next to a baseline run, over whole runs.

Counters and histogram buckets are cumulative and survive bridge restarts, so
``max_over_time(...[$__range])`` of each series is its final value: both runs must lie in
the dashboard's time range, they need not overlap.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards import names as n
from dashboards.panels import bars, board, single

UID = "finishline-comparison"
RUNS = (("run", "$run"), ("baseline", "$baseline"))


def _final(series_: str, run: str) -> str:
    return f'max_over_time({series_}{{run="{run}"}}[$__range])'


def _quantile(name: str, q: float, run: str) -> str:
    buckets = n.ok_buckets(name, f'run="{run}"')
    return f"histogram_quantile({q}, sum by (le) (max_over_time({buckets}[$__range])))"


def build() -> dashboard.Dashboard:
    req = n.COUNTER["requests"]
    g = board(
        "finishline — run vs baseline",
        UID,
        "Whole-run figures of a run and a baseline run (both within the time range).",
        "now-24h",
        [("run", n.request_label_values("run"), False), ("baseline", n.request_label_values("run"), False)],
    )
    g.row("Latency percentiles of successful requests")
    for name, title in (("ttft", "TTFT"), ("tpot", "TPOT"), ("e2e", "E2E"), ("itl", "ITL")):
        queries = [(_quantile(name, q, value), f"{label} {ql}") for label, value in RUNS for ql, q in n.QUANTILES]
        g.add(bars(title, "s", queries), w=12)
    g.row("Throughput, errors, goodput")
    for label, value in RUNS:
        g.add(
            single(
                f"Output tokens/s ({label})",
                "short",
                [(f'sum(avg_over_time({n.OUTPUT_TOKENS_RATE}{{run="{value}"}}[$__range]))', label)],
                "Mean over the time the run was sending.",
            ),
            w=6,
            h=5,
        )
    for label, value in RUNS:
        g.add(
            single(
                f"Goodput share ({label})",
                "percentunit",
                [(f"sum({_final(n.COUNTER['good_requests'], value)}) / sum({_final(req, value)})", label)],
            ),
            w=6,
            h=5,
        )
    g.add(
        bars(
            "Requests per run",
            "short",
            [(f"sum({_final(req, value)})", label) for label, value in RUNS],
        ),
        w=8,
    )
    g.add(
        bars(
            "Error share by class",
            "percentunit",
            [
                (
                    f"(sum by (outcome) ({_final(req, value)}) / scalar(sum({_final(req, value)})))",
                    f"{label} {{{{outcome}}}}",
                )
                for label, value in RUNS
            ],
            "Share of requests by final outcome (ok included).",
        ),
        w=8,
    )
    g.add(
        bars(
            "p99 ratio run / baseline",
            "percentunit",
            [
                (f"{_quantile(name, 0.99, '$run')} / {_quantile(name, 0.99, '$baseline')}", name.upper())
                for name in ("ttft", "tpot", "e2e")
            ],
            "Above 100% the run is slower than the baseline.",
        ),
        w=8,
    )
    return g.board
