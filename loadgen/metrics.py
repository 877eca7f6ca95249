"""Metric definitions — the one source of truth (``docs/metrics.md`` mirrors this module).

Definitions follow vLLM's benchmark (``vllm bench serve``), computed on the *final*
attempt of a logical request, i.e. the one whose response the user kept:

- TTFT: first token (first non-empty content, reasoning or tool-call delta) minus request sent.
- E2E: response end minus request sent.
- TPOT: (E2E - TTFT) / (output tokens - 1); undefined for fewer than two output tokens.
- ITL: the gaps between consecutive token-bearing chunks; a chunk carrying k tokens
  after a gap g contributes k samples of g/k, so ITL is per token.

Reasoning models (GuideLLM's and AIPerf's names): output tokens are reasoning tokens
(``reasoning_content`` / ``reasoning`` deltas) followed by answer tokens (``content`` or
``tool_calls`` deltas). TTFT, TPOT and ITL above stay over all output tokens; the answer alone:

- TTFOT (time to first output token): first answer delta minus request sent; undefined when
  no answer came. Without reasoning it equals TTFT.
- answer tokens: output tokens minus reasoning tokens (the server's
  ``usage.completion_tokens_details.reasoning_tokens``, else the reasoning chunks' tokens).
- TPOT (answer): (E2E - TTFOT) / (answer tokens - 1); undefined for fewer than two.
- ITL (answer): ITL over the chunks from the first answer chunk on (the gap into the first
  answer chunk, the wait for the answer after the reasoning, is not one of them).

Client-side and user-visible timings that vLLM's benchmark does not have:

- client queue: started - scheduled (waiting for a free slot inside the client).
- dispatch delay: first attempt sent - scheduled. Near zero for an honest open-loop
  client; when it grows the client, not the server, is late (coordinated omission).
- retry wait: total seconds slept between attempts.
- user latency: end of the last attempt - scheduled, i.e. what the caller waited,
  retries and client queueing included.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from loadgen.records import Attempt, RequestRecord

# Names used everywhere (summaries, Prometheus, reports): keep in sync with docs/metrics.md.
LATENCY_METRICS: tuple[str, ...] = (
    "ttft",
    "tpot",
    "itl",
    "e2e",
    "dispatch_delay",
    "client_queue",
    "retry_wait",
    "user_latency",
)
# The answer alone (reasoning models; see the module docstring): each is the one above without the reasoning.
ANSWER_METRICS: tuple[str, ...] = ("ttfot", "tpot_answer", "itl_answer")
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0, 99.9)


def ttft(attempt: Attempt) -> float | None:
    if attempt.first_token is None:
        return None
    return attempt.first_token - attempt.sent


def e2e(attempt: Attempt) -> float:
    return attempt.end - attempt.sent


def tpot(attempt: Attempt) -> float | None:
    return _per_later_token(attempt, ttft(attempt), attempt.output_tokens)


def _per_later_token(attempt: Attempt, first: float | None, tokens: int | None) -> float | None:
    """The time from the first token of a kind (``first``, s after sending) to the response's end,
    over the ``tokens`` of that kind after it; None with fewer than two."""
    if first is None or tokens is None or tokens < 2:
        return None
    return (e2e(attempt) - first) / (tokens - 1)


def itl(attempt: Attempt) -> Iterator[float]:
    """Per-token inter-token latencies in seconds (see the module docstring)."""
    return _gaps_from(attempt, 0)


def _gaps_from(attempt: Attempt, start: int) -> Iterator[float]:
    """The per-token gaps between the chunks from ``chunk_us[start]`` on."""
    offsets = attempt.chunk_us
    counts = attempt.chunk_tokens
    for i in range(start + 1, len(offsets)):
        tokens = counts[i] if i < len(counts) and counts[i] > 0 else 1
        gap = (offsets[i] - offsets[i - 1]) / 1e6 / tokens
        for _ in range(tokens):
            yield gap


def itl_of_chunks(
    chunk_us: npt.NDArray[np.int64], chunk_tokens: npt.NDArray[np.int64], first: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """:func:`itl` of many attempts at once, over their chunks laid end to end.

    ``first`` marks each attempt's first chunk; ``chunk_tokens`` is as long as ``chunk_us``
    (an attempt's missing counts given as 0). For every chunk but an attempt's first, returns
    the per-token gap in seconds and how many tokens it counts for: ``np.repeat(gaps, tokens)``
    is, value for value and in order, what :func:`itl` yields for each attempt in turn.
    """
    later = ~first[1:]
    steps = (chunk_us[1:] - chunk_us[:-1])[later]
    counts = chunk_tokens[1:][later]
    tokens = np.where(counts > 0, counts, 1).astype(np.int64)
    return steps / 1e6 / tokens, tokens  # the operations of itl(), in its order: the same floats


def ttfot(attempt: Attempt) -> float | None:
    """Time to first output (answer) token."""
    if attempt.first_answer is None:
        return None
    return attempt.first_answer - attempt.sent


def tpot_answer(attempt: Attempt) -> float | None:
    return _per_later_token(attempt, ttfot(attempt), attempt.answer_tokens)


def itl_answer(attempt: Attempt) -> Iterator[float]:
    """:func:`itl` from the first answer chunk on (nothing without an answer)."""
    start = attempt.answer_chunk
    return iter(()) if start is None else _gaps_from(attempt, start)


def dispatch_delay(record: RequestRecord) -> float:
    return record.attempts[0].sent - record.scheduled if record.attempts else 0.0


def client_queue(record: RequestRecord) -> float:
    return record.started - record.scheduled


def retry_wait(record: RequestRecord) -> float:
    return sum(a.retry_wait for a in record.attempts)


def user_latency(record: RequestRecord) -> float:
    return record.end - record.scheduled


def request_values(record: RequestRecord) -> dict[str, float | None]:
    """Every per-request metric of one record (ITL excluded: it has many values)."""
    final = record.final
    return {
        "ttft": ttft(final),
        "tpot": tpot(final),
        "e2e": e2e(final),
        "dispatch_delay": dispatch_delay(record),
        "client_queue": client_queue(record),
        "retry_wait": retry_wait(record),
        "user_latency": user_latency(record),
    }


def answer_values(record: RequestRecord) -> dict[str, float | None]:
    """The answer's per-request metrics of one record (ITL excluded)."""
    final = record.final
    return {"ttfot": ttfot(final), "tpot_answer": tpot_answer(final)}


def output_tokens(record: RequestRecord) -> int:
    return record.final.output_tokens or 0


def reasoning_tokens(record: RequestRecord) -> int:
    """Of :func:`output_tokens`, the reasoning (0 when unknown: a record written before they were counted)."""
    return record.final.reasoning_tokens or 0


def prompt_tokens(record: RequestRecord) -> int:
    return record.final.prompt_tokens or 0


# --- Service-level objectives: when a request is *good* (goodput) ---
# One rule for the summary (vectorised over a run's columns) and the bridge (record by record).


@dataclass(frozen=True, slots=True)
class SloLimit:
    """One threshold of an SLO: ``metric``'s value must be at most ``limit`` seconds.

    ``undefined_meets``: whether a request whose value is undefined (``None``, or NaN in a
    column) meets it. Both checks below read these three fields and nothing else.
    """

    metric: str
    limit: float
    undefined_meets: bool

    def meets(self, value: float | None) -> bool:
        """The rule for one request's value."""
        if value is None or value != value:  # NaN: undefined, as in a column
            return self.undefined_meets
        return value <= self.limit

    def meets_all(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """The same rule over a column of values, NaN where undefined."""
        return np.where(np.isnan(values), self.undefined_meets, values <= self.limit)


# Failure-aware percentiles (AIPerf's ``adj_p*``): a request that failed counts as an infinitely
# slow one, so a run that fails fast cannot look faster than one that answers slowly. Over these
# metrics; a request the client cancelled (the run stopped) is left out, it says nothing of the server.
FAILURE_AWARE_METRICS: tuple[str, ...] = ("ttft", "tpot", "e2e")


def failure_aware_percentiles(
    ok_values: npt.NDArray[np.float64], failed: int, percentiles: Sequence[float] = PERCENTILES
) -> list[float]:
    """The ``percentiles`` of the successful requests' values (NaN: undefined, left out) together
    with ``failed`` values of +inf, by numpy's linear method: ``inf`` where a percentile reaches
    the failures, NaN without any request. Without failures, exactly ``numpy.percentile``'s."""
    finite = np.sort(ok_values[np.isfinite(ok_values)])
    if failed == 0:
        return (
            [float(q) for q in np.percentile(finite, list(percentiles))]
            if finite.size
            else [math.nan] * len(percentiles)
        )
    n = finite.size + failed
    out = []
    for q in percentiles:
        position = q / 100.0 * (n - 1)
        lo, hi = math.floor(position), math.ceil(position)
        if hi >= finite.size:
            out.append(math.inf)
        else:
            out.append(float(finite[lo] + (finite[hi] - finite[lo]) * (position - lo)))
    return out


# The metrics an SLO may set, and whether an undefined value meets the threshold: an undefined
# TPOT (fewer than two output tokens) cannot violate a per-token objective; an undefined TTFT
# (no token ever arrived) or E2E cannot meet theirs.
SLO_METRICS: dict[str, bool] = {"ttft": False, "tpot": True, "e2e": False}


@dataclass(frozen=True, slots=True)
class SloRule:
    """A request is good when it succeeded and met every threshold set (seconds; ``None``: not set)."""

    ttft: float | None = None
    tpot: float | None = None
    e2e: float | None = None
    _limits: tuple[SloLimit, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pairs = ((metric, getattr(self, metric), meets) for metric, meets in SLO_METRICS.items())
        limits = tuple(SloLimit(metric, limit, meets) for metric, limit, meets in pairs if limit is not None)
        object.__setattr__(self, "_limits", limits)  # once: the bridge checks every record

    @classmethod
    def from_ms(cls, ttft_ms: float | None, tpot_ms: float | None, e2e_ms: float | None) -> SloRule:
        """The rule from thresholds in milliseconds, as users write them."""

        def s(ms: float | None) -> float | None:
            return None if ms is None else ms / 1000.0

        return cls(ttft=s(ttft_ms), tpot=s(tpot_ms), e2e=s(e2e_ms))

    def limits(self) -> tuple[SloLimit, ...]:
        """Every threshold set, in the order of :data:`SLO_METRICS`."""
        return self._limits

    def good(self, record: RequestRecord, values: Mapping[str, float | None] | None = None) -> bool:
        """Whether one record is good; ``values``: its :func:`request_values`, if already computed."""
        if not record.ok:
            return False
        if values is None:
            values = request_values(record)
        return all(limit.meets(values[limit.metric]) for limit in self._limits)

    def good_all(
        self, ok: npt.NDArray[np.bool_], values: Mapping[str, npt.NDArray[np.float64]]
    ) -> npt.NDArray[np.bool_]:
        """Which requests of a group are good: ``ok`` per request, ``values`` a column per metric (NaN: undefined)."""
        good = ok.copy()
        for limit in self._limits:
            good &= limit.meets_all(values[limit.metric])
        return good


# --- Live exposition: Prometheus names, labels and buckets (docs/live-metrics.md) ---
# The bridge (coordinator/bridge) exposes these; dashboards and rules (dashboards/) query them.
# Values are always the functions above applied to records; only the names live here.

PROM_LABELS: tuple[str, ...] = ("run", "scenario", "workload", "phase", "target", "outcome")

# Request-level latencies (TTFT, E2E, dispatch delay, retry wait): 1 ms .. 10 min, steps of
# at most 1.5x between 20 ms and 30 s so that a histogram quantile is within one bucket.
REQUEST_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.03,
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
    1.5,
    2.0,
    3.0,
    4.0,
    5.0,
    7.5,
    10.0,
    15.0,
    20.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
# Token-level latencies (TPOT, ITL): 0.5 ms .. 10 s.
TOKEN_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    2.0,
    5.0,
    10.0,
)

# metric name above -> (Prometheus histogram family, buckets)
PROM_HISTOGRAMS: dict[str, tuple[str, tuple[float, ...]]] = {
    "ttft": ("finishline_ttft_seconds", REQUEST_BUCKETS),
    "ttfot": ("finishline_ttfot_seconds", REQUEST_BUCKETS),
    "tpot": ("finishline_tpot_seconds", TOKEN_BUCKETS),
    "itl": ("finishline_itl_seconds", TOKEN_BUCKETS),
    "e2e": ("finishline_e2e_seconds", REQUEST_BUCKETS),
    "dispatch_delay": ("finishline_dispatch_delay_seconds", REQUEST_BUCKETS),
    "retry_wait": ("finishline_retry_wait_seconds", REQUEST_BUCKETS),
}
# Counters (exposed with the ``_total`` suffix). ``outcome`` is the final attempt's class for
# requests/errors/tokens, the attempt's own class for attempts, the retried attempt's for retries.
PROM_COUNTERS: dict[str, str] = {
    "requests": "finishline_requests",
    "attempts": "finishline_attempts",
    "errors": "finishline_errors",
    "retries": "finishline_retries",
    "prompt_tokens": "finishline_prompt_tokens",
    "output_tokens": "finishline_output_tokens",
    "reasoning_tokens": "finishline_reasoning_tokens",
    "good_requests": "finishline_good_requests",
}
# Gauges from the workers' samples stream (labels run, scenario, phase, target).
PROM_GAUGES: dict[str, str] = {
    "users": "finishline_active_users",
    "target_rate": "finishline_target_rate",
    "achieved_rate": "finishline_achieved_rate",
    "cpu_percent": "finishline_client_cpu_percent",
    "loop_lag": "finishline_client_loop_lag_seconds",
    "rss_bytes": "finishline_client_rss_bytes",  # the largest worker's resident memory
    "slo_objective": "finishline_slo_objective",
}
# Container resources of a Docker target (coordinator/docker/live.py publishes them to the
# samples stream; labels run, target). Gauges: the running container's latest stats sample.
PROM_CONTAINER_LABELS: tuple[str, ...] = ("run", "target")
PROM_CONTAINER_GAUGES: dict[str, str] = {
    "cpu_percent": "finishline_container_cpu_percent",  # 100 = one core busy
    "memory_bytes": "finishline_container_memory_bytes",  # without reclaimable page cache
    "memory_limit": "finishline_container_memory_limit_bytes",  # the host's memory when unlimited
}
# Counters over every container of the run (exposed with the ``_total`` suffix).
PROM_CONTAINER_COUNTERS: dict[str, str] = {
    "oom_kills": "finishline_container_oom_kills",  # containers killed by the OOM killer
    "restarts": "finishline_container_restarts",  # restarts by Docker's restart policy
}
