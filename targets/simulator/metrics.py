"""``/metrics`` with vLLM's metric names, so dashboards and scrapers built for vLLM work as is."""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from targets.simulator.sequence import Sequence

# vLLM's bucket boundaries (v0.6+), with finer low ends for the fast presets.
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
ITL_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
REQUEST_BUCKETS = (
    0.01,
    0.05,
    0.1,
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)


class BulkHistogram:
    """A histogram that takes ``n`` equal observations in one call.

    The inter-token latency gets one observation per token; batching them per distinct
    value keeps ``/metrics`` off the per-token hot path.
    """

    def __init__(self, name: str, doc: str, buckets: tuple[float, ...], model: str) -> None:
        self.name, self.doc, self.model = name, doc, model
        self.bounds = [*buckets, float("inf")]
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0

    def observe_many(self, value: float, n: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += n
        self.sum += value * n

    def observe(self, value: float) -> None:
        self.observe_many(value, 1)

    def collect(self) -> list[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.doc, labels=["model_name"])
        cumulative, running = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            cumulative.append((floatToGoString(bound), running))
        family.add_metric([self.model], cumulative, self.sum)
        return [family]


class EngineMetrics:
    """The Prometheus registry of one simulator process (label ``model_name`` as vLLM)."""

    def __init__(self, model: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        lbl = ["model_name"]

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, lbl, registry=r).labels(model)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, lbl, registry=r).labels(model)

        def hist(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, lbl, buckets=buckets, registry=r).labels(model)

        self.running = gauge("vllm:num_requests_running", "Requests in the running batch.")
        self.waiting = gauge("vllm:num_requests_waiting", "Requests waiting to be scheduled.")
        self.kv_usage = gauge("vllm:kv_cache_usage_perc", "KV-cache usage, 1 means 100 percent.")
        self.preemptions = counter("vllm:num_preemptions", "Cumulative preemptions.")
        self.prompt_tokens = counter("vllm:prompt_tokens", "Prompt tokens of admitted requests.")
        self.generation_tokens = counter("vllm:generation_tokens", "Generated tokens.")
        self.ttft = hist("vllm:time_to_first_token_seconds", "Time to first token.", TTFT_BUCKETS)
        self.itl = BulkHistogram("vllm:inter_token_latency_seconds", "Inter-token latency.", ITL_BUCKETS, model)
        r.register(self.itl)
        self.e2e = hist("vllm:e2e_request_latency_seconds", "End-to-end request latency.", REQUEST_BUCKETS)
        self.queue = hist("vllm:request_queue_time_seconds", "Time spent waiting in the queue.", REQUEST_BUCKETS)
        self._success = Counter(
            "vllm:request_success", "Finished requests.", ["model_name", "finished_reason"], registry=r
        )
        self._model = model
        self.prefix_queries = counter("vllm:prefix_cache_queries", "Prompt tokens looked up.")
        self.prefix_hits = counter("vllm:prefix_cache_hits", "Prompt tokens found in the cache.")

    def set_state(self, running: int, waiting: int, kv_usage: float) -> None:
        self.running.set(running)
        self.waiting.set(waiting)
        self.kv_usage.set(kv_usage)

    def admitted(self, seq: Sequence) -> None:
        """First admission of a request: queue time, prompt and prefix-cache counters."""
        assert seq.queue_exit is not None
        self.queue.observe(seq.queue_exit - seq.arrival)
        self.prompt_tokens.inc(seq.prompt_len)
        self.prefix_queries.inc(seq.prompt_len)
        self.prefix_hits.inc(seq.cached_tokens)

    def finished(self, seq: Sequence, reason: str, end: float) -> None:
        self._success.labels(self._model, reason).inc()
        self.e2e.observe(end - seq.arrival)

    def render(self) -> bytes:
        return generate_latest(self.registry)
