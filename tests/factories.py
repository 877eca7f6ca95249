"""Test data, built one way: request records, worker and container samples, workloads and worker configs,
scenarios, a Prometheus plan.

Every test module makes its records here, so a test of the summary, of the bridge and of the
collector look at records of the same shape. ``record`` is exact (each time and token where
the arguments put it); ``random_record`` draws the arguments, for tests that need a crowd;
``varied_records`` draws attempts and chunks directly, awkward ones too, for tests of readers.
Scenarios are plain data (what a user writes), written as YAML by ``write_scenario``;
``ContainerWorkers`` is the part of one that a worker launcher reads.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dashboards.prometheus_config import PrometheusPlan, ScrapeTarget
from loadgen.config import WorkerConfig, WorkerHello, finishline_version
from loadgen.records import Attempt, RequestRecord
from loadgen.samples import ContainerSample, StatsSample, WorkerSample
from tests.paths import RULES

# The HTTP status an error class comes with, where it has one (a timeout or a reset has none).
ERROR_STATUS = {"http_429": 429, "http_4xx": 400, "http_5xx": 500}


def record(
    *,
    t0: float = 100.0,
    ttft: float = 0.05,
    itl: float | Sequence[float] = 0.01,
    tokens: int = 10,
    error: str | None = None,
    retries: int = 0,
    retry_error: str = "http_5xx",
    delay: float = 0.0,
    prompt_tokens: int = 100,
    phase: str = "steady",
    workload: str = "chat",
    run_id: str = "r",
    worker: str = "w:1",
    target: str = "",
    wall_time: float = 0.0,
    record_id: str | None = None,
    reasoning: int = 0,
) -> RequestRecord:
    """A streamed chat completion whose last attempt is sent at ``t0`` (monotonic s).

    Success: the first token ``ttft`` s after sending, then one token a chunk, ``itl`` s apart
    (one gap for all, or each gap); the reply ends 1 ms after the last token. ``tokens=0``: a
    reply with no token (TTFT and TPOT undefined), ``tokens=1``: TPOT undefined.
    ``error``: the last attempt fails with that class, 0.2 s after sending, with no token.
    ``retries``: that many failed attempts (``retry_error``) before, from ``t0 - 1`` s on.
    ``delay``: how late the client sent the first attempt after its schedule (dispatch delay).
    ``reasoning``: the first that many tokens are reasoning, the rest the answer.
    """
    gaps = [itl] * max(tokens - 1, 0) if isinstance(itl, int | float) else list(itl)
    assert len(gaps) == max(tokens - 1, 0), "one gap for every token after the first"
    attempts = [
        Attempt(
            number=i + 1,
            sent=t0 - 1.0 + i * 0.1,
            end=t0 - 0.95 + i * 0.1,
            status=ERROR_STATUS.get(retry_error),
            error=retry_error,
            retry_wait=0.05 if i else 0.0,
        )
        for i in range(retries)
    ]
    retry_wait = 0.05 if retries else 0.0
    if error is None:
        arrivals = [ttft]
        for gap in gaps:
            arrivals.append(arrivals[-1] + gap)
        chunk_us = [round(a * 1e6) for a in arrivals] if tokens else []
        last = arrivals[-1] if tokens else ttft
        final = Attempt(
            number=retries + 1,
            sent=t0,
            end=t0 + last + 0.001,
            status=200,
            first_byte=t0 + ttft / 2,
            first_token=t0 + ttft if tokens else None,
            chunk_us=chunk_us,
            chunk_tokens=[1] * len(chunk_us),
            prompt_tokens=prompt_tokens,
            output_tokens=tokens,
            retry_wait=retry_wait,
            first_answer=t0 + arrivals[reasoning] if reasoning < tokens else None,
            answer_chunk=reasoning if reasoning < tokens else None,
            reasoning_tokens=min(reasoning, tokens),
        )
    else:
        final = Attempt(
            number=retries + 1,
            sent=t0,
            end=t0 + 0.2,
            status=ERROR_STATUS.get(error),
            error=error,
            prompt_tokens=prompt_tokens,
            retry_wait=retry_wait,
        )
    attempts.append(final)
    scheduled = attempts[0].sent - delay
    return RequestRecord(
        id=record_id or uuid.uuid4().hex,
        run_id=run_id,
        worker=worker,
        phase=phase,
        workload=workload,
        api="chat",
        stream=True,
        scheduled=scheduled,
        started=scheduled,
        end=final.end,
        wall_time=wall_time,
        attempts=attempts,
        target=target,
    )


def random_record(
    rng: random.Random, *, run_id: str = "r", phase: str = "steady", t0: float | None = None
) -> RequestRecord:
    """A record drawn from ``rng``: 1 to 40 tokens (one-token answers among them), a lognormal
    TTFT, ITLs of 5-40 ms; one in ten retried after a 429, one in five failed (5xx or timeout).
    Sent now (``time.monotonic()``, wall time ``time.time()``) unless ``t0`` is given."""
    retries = 1 if rng.random() < 0.1 else 0
    error = rng.choice([None] * 8 + ["http_5xx", "timeout"])
    tokens = rng.randint(1, 40)
    ttft = rng.lognormvariate(-2.5, 0.8)
    gaps = [rng.uniform(0.005, 0.040) for _ in range(tokens - 1)]
    return record(
        t0=time.monotonic() if t0 is None else t0,
        ttft=ttft,
        itl=gaps,
        tokens=tokens,
        error=error,
        retries=retries,
        retry_error="http_429",
        prompt_tokens=rng.randint(10, 500),
        phase=phase,
        workload=rng.choice(["chat", "long"]),
        run_id=run_id,
        worker="test:1",
        target="sim",
        wall_time=time.time(),
    )


def _varied_attempt(rng: random.Random, number: int, sent: float, error: str | None) -> Attempt:
    n = rng.randint(0, 12) if error is None else rng.randint(0, 3)
    offsets = sorted(rng.randint(1_000, 900_000) for _ in range(n))
    counts = [rng.choice([1, 1, 1, 2, 3, 0]) for _ in range(n)]
    if rng.random() < 0.2:  # counts missing or extra, as a broken or older writer might leave them
        counts = counts[: rng.randint(0, n)] if rng.random() < 0.5 else [*counts, 5]
    tokens = sum(max(c, 1) for c in counts) if error is None else None
    return Attempt(
        number=number,
        sent=sent,
        end=sent + rng.uniform(0.1, 1.0),
        status=200 if error is None else 429,
        error=error,
        first_token=sent + offsets[0] / 1e6 if offsets and rng.random() < 0.95 else None,
        chunk_us=offsets,
        chunk_tokens=counts,
        prompt_tokens=rng.randint(10, 500),
        output_tokens=tokens,
        retry_wait=rng.uniform(0, 0.1) if number > 1 else 0.0,
    )


def varied_records(n: int, seed: int = 1) -> list[RequestRecord]:
    """``n`` records drawn from ``seed``, of the shapes a reader of records must take: several phases and
    workloads, up to three attempts (429, 5xx, timeout), chunks of 0-3 tokens, chunk counts missing
    or extra (as a broken or older writer might leave them), a request without attempts."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        t0 = 100.0 + i * 0.01
        attempts = []
        for k in range(rng.choice([1, 1, 1, 2, 3])):
            error = rng.choice([None, None, None, "http_429", "http_5xx", "timeout"])
            attempts.append(_varied_attempt(rng, k + 1, t0 + 0.001 + k * 0.2, error))
            if error is None:
                break
        if rng.random() < 0.01:
            attempts = []  # cancelled before it was sent
        records.append(
            RequestRecord(
                id=uuid.uuid4().hex,
                run_id="r",
                worker="w:1",
                phase=rng.choice(["warm", "steady", "burst"]),
                workload=rng.choice(["chat", "rag", "code"]),
                api="chat",
                stream=True,
                scheduled=t0,
                started=t0 + rng.uniform(0, 0.001),
                end=attempts[-1].end if attempts else t0,
                wall_time=0.0,
                attempts=attempts,
            )
        )
    return records


def prometheus_plan() -> PrometheusPlan:
    """What a run of target ``sim`` (run ``r1``) has Prometheus scrape: two bridges (ports 9001 and
    9002) and a vLLM server at 127.0.0.1:8000, with the recording rules. Nothing listens there."""
    return PrometheusPlan(
        run_id="r1",
        target="sim",
        bridges=["127.0.0.1:9001", "127.0.0.1:9002"],
        servers=[ScrapeTarget(base_url="http://127.0.0.1:8000", kind="vllm")],
        rule_files=[str(RULES / "recording_rules.yml")],
    )


def worker_samples(
    n: int = 10, *, cpu: float = 10.0, lag_ms: float = 1.0, worker: str = "w:1", start: float = 0.0
) -> list[WorkerSample]:
    """``n`` samples of one worker, a second apart from ``start``, at the same CPU and loop lag."""
    return [WorkerSample(worker=worker, time=start + i, cpu_percent=cpu, loop_lag_ms=lag_ms) for i in range(n)]


def container_sample(
    *, oom: int = 0, restarts: int = 0, running: bool = True, cpu: float | None = 37.5, target: str = "m"
) -> ContainerSample:
    """What the coordinator publishes about container 1 of a Docker target; ``cpu=None``: no new
    stats sample (only the totals)."""
    now = time.monotonic()
    stats = None
    if cpu is not None:
        stats = StatsSample(
            time=now,
            container=1,
            cpu_percent=cpu,
            memory_bytes=123_456_789,
            memory_limit=1 << 30,
            memory_failcnt=0,
            pids=3,
        )
    return ContainerSample(
        target=target, time=now, running=running, oom_kills=oom, restarts=restarts, container=1, stats=stats
    )


def synthetic_workload(
    name: str, tokens: int, output: int | dict[str, Any], *, ignore_eos: bool = True, **fields: Any
) -> dict[str, Any]:
    """A workload of synthetic prompts of ``tokens`` tokens asking for ``output`` tokens (a number or a
    distribution); ``ignore_eos``: the server answers exactly that many. ``fields`` add keys
    (``headers``, ``session``, ``chain``, ...)."""
    workload: dict[str, Any] = {"name": name, "prompt": {"kind": "synthetic", "tokens": tokens}, "output": output}
    if ignore_eos:
        workload["sampling"] = {"ignore_eos": True}
    return workload | fields


def worker_config(base_url: str, workloads: list[dict[str, Any]], retry: dict[str, Any] | None = None) -> WorkerConfig:
    """What a worker is told (run ``test``, seed 7, model ``sim`` at ``base_url``/v1), for users run
    in the test's process; the Redis URL is never connected (records go to a callback)."""
    return WorkerConfig.model_validate(
        {
            "run_id": "test",
            "redis_url": "redis://127.0.0.1:1/0",
            "seed": 7,
            "target": {"base_url": base_url + "/v1", "model": "sim"},
            "workloads": workloads,
            "retry": retry or {},
        }
    )


# -- scenarios ---------------------------------------------------------------------------------

# Two workloads of different shapes: short chats of varied length, long fixed summaries.
CHAT_AND_SUMMARISE: list[dict[str, Any]] = [
    {
        "name": "chat",
        "weight": 2,
        "prompt": {"kind": "synthetic", "tokens": {"kind": "uniform", "min": 50, "max": 300}},
        "output": {"kind": "uniform", "min": 8, "max": 40},
    },
    {"name": "summarise", "weight": 1, "prompt": {"kind": "synthetic", "tokens": 600}, "output": 24},
]


@dataclass(frozen=True)
class ContainerWorkers:
    """The container fields of the scenario's ``workers`` (``workers: {containers: 2, cpus: 0.5}``),
    as ``coordinator.docker.workers.ContainerWorkersSpec`` reads them."""

    containers: int = 2
    cpus: float | None = None
    memory: str | None = None


def simulator_scenario(folder: Path, phases: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A scenario of ``CHAT_AND_SUMMARISE`` against the built-in simulator (preset gpu-8b), two
    workers, its runs under ``folder/runs``; ``fields`` add or replace top-level keys."""
    return {
        "name": "e2e",
        "target": {"kind": "simulator", "preset": "gpu-8b"},
        "workloads": CHAT_AND_SUMMARISE,
        "phases": phases,
        "workers": 2,
        "output_dir": str(folder / "runs"),
        "drain_timeout": 20,
        **fields,
    }


def write_scenario(folder: Path, scenario: dict[str, Any], name: str = "scenario.yaml") -> Path:
    """The scenario as a YAML file in ``folder`` (relative paths in it are relative to ``folder``)."""
    path = folder / name
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path


# A valid scenario of a URL target (nothing listens there: only validation may happen), and the
# same with one key changed, for tests of what an invalid scenario gives.
REPORT_SECTIONS = [  # a report's sections in order: the verdict, the figures, then the tables and what ran
    "verdict",
    "latency",
    "over-time",
    "per-phase",
    "failures",
    "client-health",
    "results",
    "percentiles",
    "slo",
    "errors",
    "selfcheck",
    "scenario",
    "environment",
]

VALID_SCENARIO = """\
name: table
target:
  kind: url
  base_url: http://127.0.0.1:9/v1
  model: m
workloads:
  - name: chat
    prompt: {kind: synthetic, tokens: 64}
    output: 16
phases:
  - {name: steady, users: 2, duration: 5s}
"""

DELETE = object()  # edited_scenario's value that removes the key


def edited_scenario(path: str, value: object, base: str = VALID_SCENARIO) -> str:
    """``base`` with one key changed (a dotted path; list indexes as numbers), as YAML text."""
    data = yaml.safe_load(base)
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return yaml.safe_dump(data, sort_keys=False)


def worker_hello(name: str = "host-a:4242", version: str | None = None, container: str | None = None) -> WorkerHello:
    """What a worker says when it joins (``finishline_hello``); ``version``: default this finishline's."""
    host, _, pid = name.rpartition(":")
    return WorkerHello(
        name=name,
        host=host,
        pid=int(pid),
        container=container,
        version=finishline_version() if version is None else version,
        python="3.11.9",
    )
