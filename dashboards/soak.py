"""The soak dashboard: trends over hours — drift of latency, errors, goodput, server and client.

Its first row shows, live, the series of the report's soak section (``coordinator/results/soak.py``)
in one-minute windows, its default: TTFT and TPOT p50/p99, throughput, error rate, the memory of
the largest worker and of the target container. The verdict is computed after the run.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards import names as n
from dashboards.panels import board, latency_quantile, note, series

UID = "finishline-soak"
SEL = 'run="$run"'


def _q(name: str, q: float, window: str) -> str:
    return latency_quantile(name, q, SEL, window)


def build() -> dashboard.Dashboard:
    g = board(
        "finishline — soak",
        UID,
        "Long runs: hour-long windows show drift that minute windows hide.",
        "now-24h",
        [("run", n.request_label_values("run"), False)],
        refresh="1m",
    )
    g.row("Soak windows: the report's soak series, one-minute windows")
    for name, title in (("ttft", "TTFT"), ("tpot", "TPOT")):
        g.add(
            series(
                f"{title} p50/p99, 1m windows",
                "s",
                [(_q(name, 0.5, "1m"), "p50"), (_q(name, 0.99, "1m"), "p99")],
            ),
            w=8,
        )
    g.add(
        series(
            "Throughput, 1m windows",
            "short",
            [
                (f'sum(rate({n.COUNTER["requests"]}{{{SEL}, outcome!="cancelled"}}[1m]))', "requests/s"),
                (f"sum(rate({n.COUNTER['output_tokens']}{{{SEL}, {n.OK}}}[1m]))", "output tokens/s"),
            ],
        ),
        w=8,
    )
    g.add(series("Error rate, 1m windows", "percentunit", [(f"max({n.ERROR_RATIO_1M}{{{SEL}}})", "error rate")]), w=8)
    g.add(
        series(
            "Memory: largest worker and target container",
            "bytes",
            [
                (f"max({n.GAUGE['rss_bytes']}{{{SEL}}})", "worker (largest RSS)"),
                (f"max({n.CONTAINER_GAUGE['memory_bytes']}{{{SEL}}})", "target container"),
            ],
            "The worker's resident memory from its samples; the container's from Docker stats (Docker targets only).",
        ),
        w=8,
    )
    g.add(
        note(
            "Soak verdict",
            "The verdict, **stable** or **drifting**, with each series' Theil–Sen slope per hour and its "
            "interval, is computed from the records after the run: the report's *Soak* section, `soak.json` "
            "and `summary.json` (`soak`) in the run directory; a drifting soak exits 7. See docs/soak.md.",
        ),
        w=8,
    )
    g.row("Latency drift")
    for name, title in (("ttft", "TTFT"), ("tpot", "TPOT"), ("e2e", "E2E")):
        g.add(
            series(
                f"{title} p50/p99, 5m and 1h windows",
                "s",
                [
                    (_q(name, 0.5, "1h"), "p50 1h"),
                    (_q(name, 0.99, "1h"), "p99 1h"),
                    (_q(name, 0.99, "5m"), "p99 5m"),
                ],
            ),
            w=8,
        )
    g.add(
        series(
            "Drift: p99 of the last 5m over p99 of the last hour",
            "percentunit",
            [(f"{_q(name, 0.99, '5m')} / {_q(name, 0.99, '1h')}", name.upper()) for name in ("ttft", "tpot", "e2e")],
        ),
        w=24,
    )
    g.row("Throughput, errors, goodput")
    g.add(
        series(
            "Output tokens/s (1h window)",
            "short",
            [(f'sum(rate({n.COUNTER["output_tokens"]}{{{SEL}, outcome="ok"}}[1h]))', "client")],
        ),
        w=8,
    )
    g.add(
        series(
            "Error ratio",
            "percentunit",
            [(f"max({n.ERROR_RATIO_15M}{{{SEL}}})", "15m"), (f"max({n.ERROR_RATIO_1M}{{{SEL}}})", "1m")],
        ),
        w=8,
    )
    g.add(
        series(
            "Goodput share and SLO burn (1h)",
            "short",
            [(f"min({n.GOODPUT_RATIO_1H}{{{SEL}}})", "good share"), (f"max({n.SLO_BURN_1H}{{{SEL}}})", "burn rate")],
        ),
        w=8,
    )
    g.row("Server and client over hours")
    g.add(
        series(
            "Server KV-cache (max per hour) and queue (mean per hour)",
            "short",
            [
                (f"max_over_time({n.SERVER_KV_USAGE}{{{SEL}}}[1h])", "KV cache usage"),
                (f"avg_over_time({n.SERVER_WAITING}{{{SEL}}}[1h])", "waiting"),
            ],
        ),
        w=8,
    )
    g.add(
        series(
            "Client: worst CPU and loop lag per hour",
            "short",
            [
                (f"max(max_over_time({n.GAUGE['cpu_percent']}{{{SEL}}}[1h]))", "CPU %"),
                (f"max(max_over_time({n.GAUGE['loop_lag']}{{{SEL}}}[1h])) * 1000", "loop lag ms"),
            ],
        ),
        w=8,
    )
    g.add(
        series(
            "Bridge: backlog and records/s",
            "short",
            [
                (f"sum({n.BRIDGE_BACKLOG}{{{SEL}}})", "backlog entries"),
                (f"sum(rate({n.BRIDGE_APPLIED}{{{SEL}}}[5m]))", "records/s applied"),
            ],
        ),
        w=8,
    )
    g.add(
        series(
            "Container memory: peak per hour vs limit (Docker targets)",
            "bytes",
            [
                (f"max(max_over_time({n.CONTAINER_GAUGE['memory_bytes']}{{{SEL}}}[1h]))", "peak used"),
                (f"max({n.CONTAINER_GAUGE['memory_limit']}{{{SEL}}})", "limit"),
            ],
            "A peak that keeps rising over hours is a leak; it ends in an OOM kill at the limit (alert FinishlineContainerOomKilled).",
        ),
        w=24,
    )
    return g.board
