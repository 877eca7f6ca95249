"""Reasoning and tool-call streams against the real simulator and its ground-truth trace.

The simulator's reasoning mode writes N reasoning tokens (``delta.reasoning_content``) before
the answer, and answers a request that carries ``tools`` with a call whose arguments are
streamed in pieces; its trace says which token times were reasoning. The client's TTFT must be
the first reasoning token's write time, its TTFOT the first answer token's, and its counts the
server's; a chain step's tool-call arguments must reach the next step's prompt.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import yaml

from coordinator.results.collector import read_records
from coordinator.results.summary import read_summary
from loadgen import metrics
from loadgen.records import RequestRecord
from tests.factories import simulator_scenario, synthetic_workload, worker_config, write_scenario
from tests.fixtures.cli import start_finishline, the_run_dir
from tests.fixtures.simulator import MEDIAN_GAP_MS, run_simulator
from tests.integration.test_loadgen_sim import run_closed, trace_of

REASONING = {"reasoning_tokens": {"distribution": "uniform", "mean": 12, "stddev": 8, "min": 4, "max": 20}}
SEARCH = {
    "type": "function",
    "function": {"name": "search", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}},
}


def events(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(e[6:]) for e in raw.split(b"\n\n") if e.startswith(b"data: {")]


def chat(sim_url: str, **extra: Any) -> bytes:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 10,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        **extra,
    }
    return httpx.post(sim_url + "/v1/chat/completions", json=body).content


def test_the_simulator_streams_reasoning_then_a_tool_call_in_pieces() -> None:
    config = {"reasoning_tokens": {"mean": 4}, "tokens_per_chunk": 3}
    with run_simulator(config, trace=True) as sim:
        plain = events(chat(sim.base_url))
        tool = events(chat(sim.base_url, tools=[SEARCH]))
        whole = httpx.post(
            sim.base_url + "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "tools": [SEARCH]},
        ).json()
        trace = sim.read_trace()
    deltas = [e["choices"][0]["delta"] for e in plain[1:] if e["choices"]]  # after the role chunk
    # 4 reasoning tokens in chunks of 3 and 1 (a chunk never mixes), then 6 answer tokens in chunks of 3
    assert [len(d.get("reasoning_content", "").split()) for d in deltas] == [3, 1, 0, 0]
    assert [len(d.get("content", "").split()) for d in deltas] == [0, 0, 3, 3]
    assert [e["usage"]["completion_tokens"] for e in plain[1:-1]] == [3, 4, 7, 10]
    assert plain[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 4}
    calls = [
        e["choices"][0]["delta"]["tool_calls"][0]
        for e in tool[1:]
        if e["choices"] and "tool_calls" in e["choices"][0]["delta"]
    ]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"]["name"] == "search"
    arguments = "".join(c["function"]["arguments"] for c in calls)
    assert set(orjson.loads(arguments)) == {"query"} and len(orjson.loads(arguments)["query"].split()) == 6
    assert [e for e in tool if e["choices"]][-1]["choices"][0]["finish_reason"] == "length"
    message = whole["choices"][0]["message"]
    assert len(message["reasoning_content"].split()) == 4 and message["content"] is None
    assert orjson.loads(message["tool_calls"][0]["function"]["arguments"])["query"].split() == [
        "in",
        "is",
    ]  # words 5 and 6
    assert whole["usage"]["completion_tokens"] == 6
    assert [t["reasoning_tokens"] for t in trace] == [4, 4, 4]
    assert trace[0]["tool_call"] is None and trace[1]["tool_call"] == "search"
    assert trace[1]["tool_arguments"] == arguments


def test_ttft_is_the_first_reasoning_token_and_ttfot_the_first_answer_token_of_the_trace() -> None:
    with run_simulator(REASONING, preset="gpu-8b") as sim:
        cfg = worker_config(sim.base_url, [synthetic_workload("think", 100, 40)])
        records, _ = run_closed(cfg, users=4, seconds=5)
        trace = trace_of(sim, records)
    first = {}
    for r in sorted(records, key=lambda r: r.scheduled):
        first.setdefault(r.user_id, r.id)
    warm = [r for r in records if r.ok and r.id not in set(first.values())]  # first ones also connect
    assert len(warm) >= 20
    ttft_err, ttfot_err, stamp_err, wait_err = [], [], [], []
    for r in warm:
        a, t = r.final, trace[r.final.response_id]
        n = t["reasoning_tokens"]
        assert 4 <= n <= 20 and a.reasoning_tokens == n and a.output_tokens == t["output_tokens"] == 40
        assert a.answer_tokens == 40 - n and not a.tokens_estimated
        ttft, ttfot = metrics.ttft(a), metrics.ttfot(a)
        assert ttft is not None and ttfot is not None and ttfot > ttft
        ttft_err.append(abs(ttft - (t["token_times"][0] - t["arrival"])))
        ttfot_err.append(abs(ttfot - (t["token_times"][n] - t["arrival"])))
        assert a.first_answer is not None
        assert a.first_token is not None
        # the same clock on both sides: each first token's write on the server against the client's stamp
        stamp_err += [abs(a.first_token - t["token_times"][0]), abs(a.first_answer - t["token_times"][n])]
        wait_err.append(abs((ttfot - ttft) - (t["token_times"][n] - t["token_times"][0])))  # the reasoning's span
        assert len(list(metrics.itl_answer(a))) == 40 - n - 1
    report = (
        f"TTFT error median {statistics.median(ttft_err) * 1e3:.3f} ms, TTFOT error median "
        f"{statistics.median(ttfot_err) * 1e3:.3f} ms, server write -> client stamp median "
        f"{statistics.median(stamp_err) * 1e3:.3f} ms, TTFOT - TTFT error median "
        f"{statistics.median(wait_err) * 1e3:.3f} ms p99 {sorted(wait_err)[int(len(wait_err) * 0.99)] * 1e3:.3f} ms"
    )
    print(report)
    # the client's usual error (tests/fixtures/simulator.py MEDIAN_GAP_MS): most of it is the
    # request's way to the server's handler, the same for both; the reasoning's span is exact
    assert statistics.median(ttft_err) <= MEDIAN_GAP_MS / 1e3, report
    assert statistics.median(ttfot_err) <= MEDIAN_GAP_MS / 1e3, report
    assert statistics.median(stamp_err) <= 0.001 and statistics.median(wait_err) <= 0.001, report


def test_a_chain_feeds_the_first_steps_tool_call_arguments_into_the_second_steps_prompt() -> None:
    steps = [
        {"id": "call", "prompt": "Find flights for {{input}}", "tools": [SEARCH], "output": 8},
        {"id": "answer", "prompt": "The search returned nothing for {{call}}", "output": 6},
    ]
    with run_simulator({"trace_prompts": True}, preset="gpu-8b") as sim:
        cfg = worker_config(sim.base_url, [synthetic_workload("agent", 20, 12, chain={"steps": steps})])
        records, _ = run_closed(cfg, users=2, seconds=2)
        trace = trace_of(sim, records)
    chains: dict[str, dict[str, RequestRecord]] = {}
    for r in records:
        if r.ok:
            chains.setdefault(r.session_id or "", {})[r.step or ""] = r
    full = [c for c in chains.values() if len(c) == 2]
    assert len(full) >= 2
    for c in full:
        call, answer = trace[c["call"].final.response_id], trace[c["answer"].final.response_id]
        assert call["tool_call"] == "search" and answer["tool_call"] is None  # only the first step sent tools
        assert len(orjson.loads(call["tool_arguments"])["query"].split()) == 8
        assert answer["prompt"] == f"The search returned nothing for {call['tool_arguments']}"
        assert c["call"].final.output_tokens == 8  # the tool call's pieces are output tokens


def test_a_run_of_a_reasoning_model_reports_the_answer_apart(tmp_path: Path) -> None:
    """``finishline run`` end to end (workers, Redis, collector, summary, report): the summary's
    reasoning tokens are the server's, its TTFOT percentiles the trace's first answer tokens."""
    (tmp_path / "sim.yaml").write_text(yaml.safe_dump(REASONING))
    workloads = [
        synthetic_workload("think", 60, 24),
        synthetic_workload(
            "agent", 20, 40, chain={"steps": [{"id": "call", "prompt": "{{input}}", "tools": [SEARCH]}]}
        ),
    ]
    scenario = simulator_scenario(
        tmp_path,
        [{"name": "steady", "users": 4, "duration": "8s"}],
        workloads=workloads,
        target={"kind": "simulator", "preset": "gpu-8b", "config": "sim.yaml"},
    )
    proc = start_finishline("run", str(write_scenario(tmp_path, scenario)), "--no-live")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    run_dir = the_run_dir(tmp_path)
    trace = [orjson.loads(line) for line in (run_dir / "simulator_trace.jsonl").read_bytes().splitlines() if line]
    records = [r for r in read_records(run_dir / "records.jsonl.gz") if r.phase == "steady"]
    summary = read_summary(run_dir / "summary.json").all
    steady = [t for t in trace if t["id"] in {r.final.response_id for r in records}]
    assert len(steady) == summary.count > 20 and all(r.ok for r in records)
    assert summary.reasoning_tokens == sum(t["reasoning_tokens"] for t in steady) > 0
    assert summary.answer_tokens == sum(t["output_tokens"] - t["reasoning_tokens"] for t in steady)
    assert sum(1 for t in steady if t["tool_call"] == "search") == summary.workloads["agent"].count > 0
    answer = summary.latency_ms_answer
    assert answer is not None
    answered = [t for t in steady if t["output_tokens"] > t["reasoning_tokens"]]  # max_tokens bounds both
    assert len(answered) == answer.ttfot.n == len(steady)
    by_id = {t["id"]: t for t in answered}
    ttfot = {r.final.response_id: metrics.ttfot(r.final) for r in records}
    errors = [
        abs(v - (by_id[i]["token_times"][by_id[i]["reasoning_tokens"]] - by_id[i]["arrival"]))
        for i, v in ttfot.items()
        if v is not None
    ]
    assert len(errors) == len(answered) and statistics.median(errors) * 1000 < MEDIAN_GAP_MS, errors
    mine = np.array([v for v in ttfot.values() if v is not None]) * 1000
    for p in (50.0, 90.0, 99.0):  # the summary's percentiles are the records' own, exactly
        assert answer.ttfot.at(p) == pytest.approx(float(np.percentile(mine, p)), rel=1e-9)
    ttft = summary.latency_ms.ttft.p50
    assert ttft is not None and answer.ttfot.p50 is not None and answer.ttfot.p50 > ttft
    assert "TTFOT p50" in out
    report = (run_dir / "report.html").read_text()
    assert "ttfot" in report and "Reasoning:" in report
