"""Series names the dashboards and rules query: the bridge's (from ``loadgen.metrics``) and ours.

Recording-rule names follow Prometheus' ``level:metric:operations`` convention; ``run:``
series are grouped by (run, scenario, target, phase) unless a name says otherwise.
"""

from __future__ import annotations

from loadgen import metrics

HIST = {name: family for name, (family, _) in metrics.PROM_HISTOGRAMS.items()}
COUNTER = {name: f"{family}_total" for name, family in metrics.PROM_COUNTERS.items()}
GAUGE = dict(metrics.PROM_GAUGES)

RUN_BY = "run, scenario, target, phase"  # the grouping of run-level recording rules
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
LATENCY_RULES: tuple[str, ...] = ("ttft", "ttfot", "tpot", "itl", "e2e", "dispatch_delay")


OK = 'outcome="ok"'  # successful requests: latencies and token rates count only these, as in the summary


def ok_buckets(name: str, selector: str = "") -> str:
    """The histogram buckets of latency ``name`` of successful requests; ``selector``: more label matchers."""
    matchers = f"{selector}, {OK}" if selector else OK
    return f"{HIST[name]}_bucket{{{matchers}}}"


def request_label_values(label: str, selector: str = "") -> str:
    """A dashboard variable's query: the values ``label`` takes on the request counter (``selector``: matchers)."""
    series = f"{COUNTER['requests']}{{{selector}}}" if selector else COUNTER["requests"]
    return f"label_values({series}, {label})"


def bucket_rate(name: str) -> str:
    """``run:finishline_ttft_seconds_bucket:rate1m`` — successful requests only, as the summary."""
    return f"run:{HIST[name]}_bucket:rate1m"


def quantile(name: str, q: str) -> str:
    return f"run:{HIST[name]}:{q}_1m"


OUTPUT_TOKENS_RATE = "run:finishline_output_tokens:rate1m"
REASONING_TOKENS_RATE = "run:finishline_reasoning_tokens:rate1m"  # of OUTPUT_TOKENS_RATE, the reasoning
REQUESTS_RATE = "run:finishline_requests:rate1m"
ERRORS_RATE = "run_outcome:finishline_errors:rate1m"  # by outcome too
RETRIES_RATE = "run_outcome:finishline_retries:rate1m"
ERROR_RATIO_1M = "run:finishline_error_ratio:rate1m"
ERROR_RATIO_15M = "run:finishline_error_ratio:rate15m"
GOODPUT_RATE = "run:finishline_goodput:rate1m"
GOODPUT_RATIO_5M = "run:finishline_goodput_ratio:rate5m"
GOODPUT_RATIO_1H = "run:finishline_goodput_ratio:rate1h"
SLO_BURN_5M = "run:finishline_slo_burn:rate5m"
SLO_BURN_1H = "run:finishline_slo_burn:rate1h"
SERVER_WAITING = "server:finishline_requests_waiting"
SERVER_RUNNING = "server:finishline_requests_running"
SERVER_KV_USAGE = "server:finishline_kv_cache_usage_ratio"
# The model servers' own gauges behind those common names (vLLM and the simulator, llama.cpp, TGI):
# the recording rules map them, and a sweep reads them from the target's /metrics at each step.
SERVER_GAUGES: dict[str, tuple[str, ...]] = {
    "waiting": ("vllm:num_requests_waiting", "llamacpp:requests_deferred", "tgi_queue_size"),
    "running": ("vllm:num_requests_running", "llamacpp:requests_processing", "tgi_batch_current_size"),
    "kv_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "llamacpp:kv_cache_usage_ratio"),
}
SERVER_TOKENS_RATE = "server:finishline_generated_tokens:rate1m"

# the bridge's own health (coordinator/bridge/consumer.py)
BRIDGE_BACKLOG = "finishline_bridge_backlog_entries"
BRIDGE_APPLIED = "finishline_bridge_applied_records_total"

# a Docker target's container resources (coordinator/bridge/containers.py); labels run, target
CONTAINER_GAUGE = dict(metrics.PROM_CONTAINER_GAUGES)
CONTAINER_COUNTER = {name: f"{family}_total" for name, family in metrics.PROM_CONTAINER_COUNTERS.items()}


def docker_only(expr: str) -> bool:
    """True for an expression over container series: it has data only in a run with a Docker target."""
    return any(name in expr for name in (*CONTAINER_GAUGE.values(), *CONTAINER_COUNTER.values()))
