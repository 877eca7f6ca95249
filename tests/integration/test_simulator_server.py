"""The real simulator on a loopback port: OpenAI client, batching behaviour, faults, metrics, errors."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from typing import Any

import aiohttp
import httpx
import openai
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.simulator import SimulatorHandle, run_simulator
from tests.fixtures.waiting import wait_for

FAST = {"step_overhead_s": 0.002, "prefill_token_s": 0.0, "decode_seq_s": 0.0, "context_token_s": 0.0}


def metrics(sim: SimulatorHandle) -> dict[str, float]:
    """Every sample of /metrics parsed by prometheus_client, keyed by name{labels}."""
    text = httpx.get(sim.base_url + "/metrics").text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "model_name")
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


async def stream_many(url: str, bodies: list[dict[str, Any]], concurrency: int) -> list[int]:
    """Send streaming completions with bounded concurrency; token count per response."""
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(body: dict[str, Any]) -> int:
            async with sem, session.post(url + "/v1/completions", json=body) as resp:
                assert resp.status == 200
                raw = await resp.read()
            events = [e[6:] for e in raw.split(b"\n\n") if e.startswith(b"data: ")]
            assert events[-1] == b"[DONE]"
            return orjson.loads(events[-2])["usage"]["completion_tokens"]

        return await asyncio.gather(*(one(b) for b in bodies))


def body(max_tokens: int, prompt: str = "hello world", **extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "prompt": prompt,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
        **extra,
    }


# ---- the official client ------------------------------------------------------------------
def test_openai_client_streams_chat_and_completions_with_usage() -> None:
    with run_simulator(preset="gpu-8b") as sim:
        client = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="none", max_retries=0)
        chunks = list(
            client.chat.completions.create(
                model="finishline-sim",
                messages=[{"role": "user", "content": "Say hi, please."}],
                max_tokens=5,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == 5 and len(text.split()) == 5
        assert chunks[-1].usage.prompt_tokens == 5 + 4 + 3  # content + message + reply overhead
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"

        comp = list(
            client.completions.create(
                model="finishline-sim",
                prompt="one two three",
                max_tokens=4,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert comp[-1].usage is not None and comp[-1].usage.prompt_tokens == 3
        assert "".join(c.choices[0].text for c in comp if c.choices).split() != []

        whole = client.chat.completions.create(
            model="finishline-sim", messages=[{"role": "user", "content": "hi"}], max_tokens=3
        )
        assert whole.usage is not None and whole.usage.completion_tokens == 3
        assert len((whole.choices[0].message.content or "").split()) == 3
        assert [m.id for m in client.models.list()] == ["finishline-sim"]

        trace = sim.read_trace()
        assert [r["output_tokens"] for r in trace] == [5, 4, 3]
        for r in trace:
            assert r["arrival"] <= r["queue_exit"] <= r["token_times"][0] <= r["finish"]
            assert r["token_times"] == sorted(r["token_times"])
            assert all(t >= d for t, d in zip(r["token_times"], r["token_due"], strict=True))


def test_continuous_usage_and_tokens_per_chunk() -> None:
    with run_simulator({"tokens_per_chunk": 4}) as sim:
        raw = httpx.post(
            sim.base_url + "/v1/completions",
            json=body(10, stream_options={"include_usage": True, "continuous_usage_stats": True}),
        ).content
        events = [orjson.loads(e[6:]) for e in raw.split(b"\n\n") if e.startswith(b"data: {")]
        content = [e for e in events if e["choices"]]
        assert [e["usage"]["completion_tokens"] for e in content] == [4, 8, 10]
        assert [len(e["choices"][0]["text"].split()) for e in content] == [4, 4, 2]
        times = sim.read_trace()[0]["token_times"]
        assert len(times) == 10 and len(set(times)) == 3 and times[0] == times[3]


# ---- the batching model ----------------------------------------------------------------------
def test_throughput_rises_until_max_num_seqs_then_queue_time_grows() -> None:
    cfg = dict(FAST, max_num_seqs=4, step_overhead_s=0.01)
    with run_simulator(cfg) as sim:
        results = {}
        for conc in (1, 2, 4, 8):
            start = len(sim.read_trace())
            asyncio.run(stream_many(sim.base_url, [body(20)] * (conc * 2), conc))
            recs = wait_for(  # a trace line follows each reply by a moment
                lambda s=start, n=conc * 2: len(t := sim.read_trace()) >= s + n and t[s:],
                timeout=10,
                what=f"{conc * 2} trace lines",
            )
            span = max(r["finish"] for r in recs) - min(r["arrival"] for r in recs)
            tput = sum(r["output_tokens"] for r in recs) / span
            queue = max(r["queue_exit"] - r["arrival"] for r in recs)
            results[conc] = (tput, queue)
    t = {c: v[0] for c, v in results.items()}
    assert t[2] > 1.6 * t[1] and t[4] > 1.6 * t[2]  # ~100, 200, 400 tok/s
    assert t[8] < 1.2 * t[4]  # plateau
    assert results[8][1] > 0.15 > results[4][1]  # the 5th..8th wait a whole wave (20 steps)


def test_long_prompt_raises_ttft_by_prefill_cost() -> None:
    cfg = dict(FAST, prefill_token_s=0.0005, enable_prefix_caching=False)
    with run_simulator(cfg) as sim:
        for prompt in ("word " * 10, "word " * 810):
            httpx.post(sim.base_url + "/v1/completions", json=body(2, prompt=prompt))
        short, long = sim.read_trace()
    ttft = [r["token_times"][0] - r["arrival"] for r in (short, long)]
    assert long["prompt_tokens"] - short["prompt_tokens"] == 800
    assert ttft[1] - ttft[0] == pytest.approx(800 * 0.0005, abs=0.015)  # 0.4 s


def test_kv_exhaustion_causes_preemptions_in_metrics() -> None:
    cfg = dict(FAST, num_kv_blocks=20, block_size=16, max_model_len=300)
    with run_simulator(cfg) as sim:
        counts = asyncio.run(stream_many(sim.base_url, [body(120, "x " * 40)] * 4, 4))
        assert counts == [120] * 4
        m = metrics(sim)
        assert m["vllm:num_preemptions_total"] > 0
        assert m["vllm:num_preemptions_total"] == sum(r["preemptions"] for r in sim.read_trace())
        assert m["vllm:kv_cache_usage_perc"] == 0.0


def test_prefix_cache_reports_cached_tokens() -> None:
    with run_simulator() as sim:
        prompt = " ".join(f"w{i}" for i in range(100))
        client = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="none", max_retries=0)
        first = client.completions.create(model="m", prompt=prompt, max_tokens=2)
        second = client.completions.create(model="m", prompt=prompt, max_tokens=2)
        assert first.usage and second.usage and second.usage.prompt_tokens_details
        assert second.usage.prompt_tokens_details.cached_tokens == 96
        assert [r["cached_tokens"] for r in sim.read_trace()] == [0, 96]


# ---- metrics ------------------------------------------------------------------------------
def test_metrics_parse_and_counters_match_requests() -> None:
    with run_simulator() as sim:
        prompts = ["a b c", "d e f g h", "i"]
        asyncio.run(stream_many(sim.base_url, [body(7, p) for p in prompts], 3))
        httpx.post(sim.base_url + "/v1/completions", json={"prompt": "x", "max_tokens": 2})
        m = metrics(sim)
    assert m["vllm:request_success_total{finished_reason=length}"] == 4
    assert m["vllm:prompt_tokens_total"] == 3 + 5 + 1 + 1
    assert m["vllm:generation_tokens_total"] == 7 * 3 + 2
    assert m["vllm:time_to_first_token_seconds_count"] == 4
    assert m["vllm:inter_token_latency_seconds_count"] == 6 * 3 + 1
    assert m["vllm:e2e_request_latency_seconds_count"] == 4
    assert m["vllm:request_queue_time_seconds_count"] == 4
    assert m["vllm:num_requests_running"] == 0 and m["vllm:num_requests_waiting"] == 0


# ---- faults -------------------------------------------------------------------------------
def send(sim: SimulatorHandle, fault: str | None, stream: bool) -> tuple[int | str, dict[str, str], bytes]:
    headers = {"X-Finishline-Fault": fault} if fault else {}
    try:
        with httpx.stream(
            "POST", sim.base_url + "/v1/completions", headers=headers, json=dict(body(5), stream=stream)
        ) as r:
            return r.status_code, dict(r.headers), r.read()
    except httpx.ReadError as exc:
        return f"ReadError: {exc}", {}, b""
    except httpx.RemoteProtocolError:
        return "RemoteProtocolError", {}, b""


def test_each_fault_gives_its_documented_response() -> None:
    with run_simulator({"faults": {"after_tokens": 2, "retry_after_seconds": 3}}) as sim:
        for code, kind in (
            ("429", "rate_limit_error"),
            ("503", "service_unavailable"),
            ("500", "internal_server_error"),
        ):
            for stream in (True, False):
                status, headers, raw = send(sim, code, stream)
                assert status == int(code)
                assert orjson.loads(raw)["error"]["type"] == kind
                assert orjson.loads(raw)["error"]["code"] == int(code)
                assert (headers.get("retry-after") == "3") == (code == "429")
        for stream in (True, False):
            assert "reset by peer" in str(send(sim, "reset", stream)[0])
        status, _, raw = send(sim, "cut", True)
        assert status == 200 and raw.count(b"data: {") == 2 and b"[DONE]" not in raw
        assert send(sim, "cut", False)[0] == "RemoteProtocolError"
        status, _, raw = send(sim, "malformed", True)
        events = raw.split(b"\n\n")
        assert events[2] == b'data: {"malformed' and raw.endswith(b"data: [DONE]\n\n")
        assert send(sim, "malformed", False)[2] == b'{"malformed'
        t0 = time.monotonic()
        status, _, raw = send(sim, "stall:0.5", True)
        assert status == 200 and time.monotonic() - t0 >= 0.5 and raw.endswith(b"[DONE]\n\n")
        status, _, raw = send(sim, "teapot", True)
        assert status == 400 and b"X-Finishline-Fault" in raw
        trace = sim.read_trace()
    stalled = next(r for r in trace if r["fault"] == "stall:0.5")
    gaps = [b - a for a, b in itertools.pairwise(stalled["token_times"])]
    assert gaps[1] >= 0.5 and max(gaps[:1] + gaps[2:]) < 0.1  # between token 2 and 3
    assert [r["outcome"] for r in trace if r["fault"] in ("reset", "cut")] == ["reset"] * 2 + ["cut"] * 2
    assert sum(r["status"] == 429 for r in trace) == 2


def test_fault_rates_apply_without_header() -> None:
    with run_simulator({"faults": {"rates": {"429": 1.0}}}) as sim:
        assert [send(sim, None, True)[0] for _ in range(3)] == [429] * 3


# ---- cold start and errors ----------------------------------------------------------------
def test_cold_start_answers_503_loading_model() -> None:
    with run_simulator({"startup_seconds": 1.5}) as sim:
        r = httpx.get(sim.base_url + "/health")
        assert r.status_code == 503 and r.json()["error"]["message"] == "Loading model"
        assert send(sim, None, True)[0] == 503
        wait_for(
            lambda: httpx.get(sim.base_url + "/health").status_code == 200,
            timeout=5,
            what="the model to load",
            interval=0.1,
        )
        assert send(sim, None, True)[0] == 200


def test_bad_bodies_get_one_line_400() -> None:
    with run_simulator() as sim:
        for path, raw, expect in (
            ("/v1/chat/completions", b"{oops", "request body is not valid JSON"),
            ("/v1/chat/completions", b'{"model": "m"}', "messages: required; add it"),
            ("/v1/completions", b'{"prompt": "x", "max_tokens": 99999999}', "max_tokens: "),
        ):
            r = httpx.post(sim.base_url + path, content=raw)
            assert r.status_code == 400
            msg = r.json()["error"]["message"]
            assert msg.startswith(expect) and "\n" not in msg
        assert "Traceback" not in sim.log()


def test_bad_config_is_one_line_on_the_command_line(tmp_path: Any) -> None:
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("max_num_seq: 4\n")
    for argv in (
        ["-m", "targets.simulator", "--config", str(cfg)],
        ["-m", "coordinator.cli", "simulate", "--config", str(cfg)],
    ):
        proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1
        assert lines[0].endswith("max_num_seq: unknown key; remove it or check its spelling")
        assert "Traceback" not in proc.stderr


def test_client_leaving_mid_stream_frees_its_slot() -> None:
    with run_simulator(dict(FAST, step_overhead_s=0.01)) as sim:
        with httpx.stream("POST", sim.base_url + "/v1/completions", json=body(500)) as r:
            events = 0
            for line in r.iter_lines():
                events += line.startswith("data: ")
                if events == 3:
                    break

        def freed() -> list[dict[str, Any]]:  # the request's trace line once its slot and KV blocks are free
            m = metrics(sim)
            free = m["vllm:num_requests_running"] == 0 and m["vllm:kv_cache_usage_perc"] == 0.0
            return sim.read_trace() if free else []

        (rec,) = wait_for(freed, timeout=10, what="the server to free the slot of the client that left")
        assert rec["outcome"] == "client_gone" and 3 <= rec["output_tokens"] < 100
        assert send(sim, None, True)[0] == 200
        assert "Traceback" not in sim.log()


def test_gpu_8b_preset_has_h100_like_latencies() -> None:
    with run_simulator(preset="gpu-8b", config={"enable_prefix_caching": False}) as sim:
        httpx.post(sim.base_url + "/v1/completions", json=body(40, prompt="w " * 1000))
        (rec,) = sim.read_trace()
    ttft = rec["token_times"][0] - rec["arrival"]
    itl = sorted(b - a for a, b in itertools.pairwise(rec["token_times"]))
    assert 0.055 < ttft < 0.075  # 9 ms step + 1000 x 50 us prefill
    assert 0.0085 < itl[len(itl) // 2] < 0.0115  # ~9 ms alone, 10-15 ms under load
