"""The live-run dashboard: what a run is doing right now, client and server side by side."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards import names as n
from dashboards.panels import Grid, board, latency_quantile, series, single

UID = "finishline-live-run"
SEL = 'run="$run", phase=~"$phase"'


def _percentiles(name: str) -> list[tuple[str, str]]:
    return [(f"{n.quantile(name, q)}{{{SEL}}}", f"{q} {{{{phase}}}}") for q, _ in n.QUANTILES]


def build() -> dashboard.Dashboard:
    req = n.COUNTER["requests"]
    g = board(
        "finishline — live run",
        UID,
        "A run as it happens: load, client latency (successful requests), errors, the server's own state.",
        "now-30m",
        [
            ("run", n.request_label_values("run"), False),
            ("phase", n.request_label_values("phase", 'run="$run"'), True),
            ("workload", n.request_label_values("workload", 'run="$run"'), True),
        ],
        refresh="5s",
    )
    g.row("Load")
    g.add(
        series(
            "Request rate: target vs achieved (client) vs completed",
            "reqps",
            [
                (f"sum by (phase) ({n.GAUGE['target_rate']}{{{SEL}}})", "target {{phase}}"),
                (f"sum by (phase) ({n.GAUGE['achieved_rate']}{{{SEL}}})", "sent {{phase}}"),
                (f"sum by (phase) ({n.REQUESTS_RATE}{{{SEL}}})", "completed {{phase}}"),
            ],
            "Target rate is set only in open-loop phases; 'sent' from the workers' samples.",
        ),
        w=8,
    )
    g.add(series("Active users", "short", [(f"sum by (phase) ({n.GAUGE['users']}{{{SEL}}})", "{{phase}}")]), w=8)
    g.add(
        series(
            "Output tokens/s: client vs server",
            "short",
            [
                (f"sum({n.OUTPUT_TOKENS_RATE}{{{SEL}}})", "client (successful requests)"),
                (f'sum({n.SERVER_TOKENS_RATE}{{run="$run"}})', "server"),
            ],
        ),
        w=8,
    )
    g.row("Latency of successful requests (1m windows)")
    g.add(series("TTFT", "s", _percentiles("ttft")), w=12)
    g.add(series("TPOT", "s", _percentiles("tpot")), w=12)
    g.add(series("E2E", "s", _percentiles("e2e")), w=12)
    g.add(series("ITL", "s", _percentiles("itl")), w=12)
    g.add(
        series(
            "TTFOT: first answer token",
            "s",
            _percentiles("ttfot"),
            "Time to first output token: the first content or tool-call token, after any reasoning (TTFT counts "
            "the first token of any kind). The same as TTFT without a reasoning model.",
        ),
        w=12,
    )
    g.add(
        series(
            "Reasoning tokens/s of output tokens/s",
            "short",
            [
                (f"sum({n.REASONING_TOKENS_RATE}{{{SEL}}})", "reasoning"),
                (f"sum({n.OUTPUT_TOKENS_RATE}{{{SEL}}})", "all output"),
            ],
            "Successful requests; reasoning tokens as the server reports them, else counted from the stream.",
        ),
        w=12,
    )
    g.add(
        series(
            "TTFT p99 by workload",
            "s",
            [
                (
                    latency_quantile("ttft", 0.99, f'{SEL}, workload=~"$workload"', "$__rate_interval", by="workload"),
                    "{{workload}}",
                )
            ],
        ),
        w=24,
    )
    g.row("Errors, retries, goodput")
    g.add(
        series("Errors by class (req/s)", "reqps", [(f"sum by (outcome) ({n.ERRORS_RATE}{{{SEL}}})", "{{outcome}}")]),
        w=8,
    )
    g.add(
        series(
            "Retries by class of the retried attempt (req/s)",
            "reqps",
            [(f"sum by (outcome) ({n.RETRIES_RATE}{{{SEL}}})", "{{outcome}}")],
        ),
        w=8,
    )
    g.add(
        series(
            "Goodput and SLO burn",
            "short",
            [
                (f"sum by (phase) ({n.GOODPUT_RATE}{{{SEL}}})", "good req/s {{phase}}"),
                (f"{n.SLO_BURN_5M}{{{SEL}}}", "burn rate 5m {{phase}}"),
            ],
            "Burn rate 1 spends the error budget exactly over the SLO window.",
        ),
        w=8,
    )
    g.add(single("Requests so far", "short", [(f'sum({req}{{run="$run"}})', "requests")]), w=6, h=5)
    g.add(
        single(
            "Errors so far by class",
            "short",
            [(f'sum by (outcome) ({n.COUNTER["errors"]}{{run="$run"}})', "{{outcome}}")],
        ),
        w=6,
        h=5,
    )
    g.add(
        single(
            "Goodput share",
            "percentunit",
            [(f'sum({n.COUNTER["good_requests"]}{{run="$run"}}) / sum({req}{{run="$run"}})', "good")],
        ),
        w=6,
        h=5,
    )
    g.add(
        single(
            "Output tokens so far",
            "short",
            [(f'sum({n.COUNTER["output_tokens"]}{{run="$run", outcome="ok"}})', "tokens")],
        ),
        w=6,
        h=5,
    )
    g.row("Server state next to client latency")
    g.add(
        series(
            "Server queue and batch",
            "short",
            [(f'{n.SERVER_WAITING}{{run="$run"}}', "waiting"), (f'{n.SERVER_RUNNING}{{run="$run"}}', "running")],
        ),
        w=8,
    )
    g.add(series("Server KV-cache usage", "percentunit", [(f'{n.SERVER_KV_USAGE}{{run="$run"}}', "KV cache")]), w=8)
    g.add(
        series(
            "Client TTFT p99 vs server waiting",
            "short",
            [
                (f"max({n.quantile('ttft', 'p99')}{{{SEL}}}) * 1000", "client TTFT p99 (ms)"),
                (f'{n.SERVER_WAITING}{{run="$run"}}', "server waiting"),
            ],
        ),
        w=8,
    )
    g.row("Is the client honest? (saturation)")
    g.add(
        series(
            "Dispatch delay p99 and loop lag",
            "s",
            [
                (f"{n.quantile('dispatch_delay', 'p99')}{{{SEL}}}", "dispatch p99 {{phase}}"),
                (f'max({n.GAUGE["loop_lag"]}{{run="$run"}})', "worst worker loop lag"),
            ],
        ),
        w=12,
    )
    g.add(series("Worst worker CPU", "percent", [(f'max({n.GAUGE["cpu_percent"]}{{run="$run"}})', "cpu")]), w=12)
    _container_row(g)
    return g.board


def _container_row(g: Grid) -> None:
    """A Docker target's container (empty for other targets): is the model starved or near its limit?"""
    cg, cc = n.CONTAINER_GAUGE, n.CONTAINER_COUNTER
    run = 'run="$run"'
    g.row("Container (Docker targets)")
    g.add(
        series(
            "Container CPU",
            "percent",
            [(f"max by (target) ({cg['cpu_percent']}{{{run}}})", "{{target}}")],
            "100% = one core busy; compare with the target's CPU limit.",
        ),
        w=8,
    )
    g.add(
        series(
            "Container memory vs limit",
            "bytes",
            [
                (f"max by (target) ({cg['memory_bytes']}{{{run}}})", "used {{target}}"),
                (f"max by (target) ({cg['memory_limit']}{{{run}}})", "limit {{target}}"),
            ],
            "Used = without reclaimable page cache (as `docker stats`); the limit is the host's memory when none is set.",
        ),
        w=8,
    )
    g.add(
        single(
            "OOM kills and restarts",
            "short",
            [
                (f"max by (target) ({cc['oom_kills']}{{{run}}})", "OOM kills {{target}}"),
                (f"max by (target) ({cc['restarts']}{{{run}}})", "restarts {{target}}"),
            ],
            "Containers of this run killed by the OOM killer, and restarts by Docker's restart policy.",
        ),
        w=8,
    )
