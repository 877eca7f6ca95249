"""Unit tests of the simulator's parts: tokenizer, config, faults, and the engine's batching model.

The engine is driven step by step with its real scheduler (no sockets, no sleeping), so the
performance model is checked exactly.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from targets.simulator import tokenizer
from targets.simulator.config import SimulatorConfig, build_config
from targets.simulator.engine import Engine
from targets.simulator.faults import FaultError, FaultPicker, parse_header
from targets.simulator.metrics import EngineMetrics
from targets.simulator.protocol import BadRequest, OutputPlanner, block_hashes, parse
from targets.simulator.sequence import Sequence


# ---- tokenizer -----------------------------------------------------------------------------
def test_tokenizer_counts_words_and_punctuation() -> None:
    assert tokenizer.tokens("Hello, world 42!") == ["Hello", ",", "world", "42", "!"]
    assert tokenizer.count("  ") == 0
    assert tokenizer.count("héllo_wörld") == 3
    assert all(tokenizer.count(w) == 1 for w in tokenizer.VOCAB)


def test_chat_overhead_is_per_message_plus_reply() -> None:
    toks = tokenizer.chat_tokens([("system", "be brief"), ("user", "hi")], 4, 3)
    assert len(toks) == (2 + 4) + (1 + 4) + 3


# ---- config -------------------------------------------------------------------------------
def test_presets_validate_and_overrides_merge() -> None:
    for name in ("gpu-8b", "cpu-small", "instant"):
        assert isinstance(build_config(name), SimulatorConfig)
    cfg = build_config("cpu-small", {"faults": {"rates": {"429": 0.1}}, "max_num_seqs": 8})
    assert cfg.max_num_seqs == 8 and cfg.faults.rates == {"429": 0.1}
    assert cfg.step_overhead_s == 0.025  # from the preset


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValidationError, match="max_num_seq"):
        build_config("gpu-8b", {"max_num_seq": 4})
    with pytest.raises(ValidationError, match="unknown fault"):
        build_config("gpu-8b", {"faults": {"rates": {"418": 0.5}}})
    with pytest.raises(ValueError, match="unknown preset"):
        build_config("tpu-1t")


# ---- faults -------------------------------------------------------------------------------
def test_fault_header_values() -> None:
    assert parse_header("stall:2.5") == ("stall:2.5", 2.5)
    assert parse_header("RESET") == ("reset", 0.0)
    for bad in ("stall:x", "stall:-1", "418", ""):
        with pytest.raises(FaultError):
            parse_header(bad)


def test_fault_rates_are_seeded_and_roughly_right() -> None:
    cfg = build_config("gpu-8b", {"faults": {"rates": {"429": 0.2, "reset": 0.1}}})
    picker = FaultPicker(cfg.faults, 7)
    draws = [picker.pick(None)[0] for _ in range(5000)]
    assert 0.17 < draws.count("429") / 5000 < 0.23
    assert 0.08 < draws.count("reset") / 5000 < 0.12
    again = FaultPicker(cfg.faults, 7)
    assert [again.pick(None)[0] for _ in range(5000)] == draws


# ---- request bodies and output lengths ----------------------------------------------------
def test_bad_bodies_give_one_line() -> None:
    with pytest.raises(BadRequest, match=r"^request body is not valid JSON$"):
        parse("chat", b"{nope")
    with pytest.raises(BadRequest, match=r"^messages: required; add it$"):
        parse("chat", b'{"model": "m"}')
    with pytest.raises(BadRequest, match=r"^max_tokens: "):
        parse("completions", b'{"prompt": "x", "max_tokens": 0}')


def test_output_length_rules() -> None:
    cfg = build_config("gpu-8b", {"output_tokens": {"distribution": "fixed", "mean": 10}, "max_model_len": 100})
    planner = OutputPlanner(cfg)
    req = parse("completions", b'{"prompt": "x", "max_tokens": 50}')
    assert planner.plan(req, 1) == (50, 10)
    req = parse("completions", b'{"prompt": "x", "max_tokens": 50, "ignore_eos": true}')
    assert planner.plan(req, 1) == (50, 50)
    req = parse("completions", b'{"prompt": "x", "max_tokens": 50, "min_tokens": 20}')
    assert planner.plan(req, 1) == (50, 20)
    req = parse("completions", b'{"prompt": "x", "max_tokens": 5}')
    assert planner.plan(req, 1) == (5, 5)
    with pytest.raises(BadRequest, match=r"^prompt: empty"):
        planner.plan(parse("completions", b'{"prompt": []}'), 0)
    with pytest.raises(BadRequest, match="maximum context length is 100"):
        planner.plan(parse("completions", b'{"prompt": "x", "max_tokens": 100}'), 1)


# ---- engine -------------------------------------------------------------------------------
@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


# Every step takes 10 ms whatever it holds: the time of a schedule is its number of steps.
TEN_MS_STEPS = {"step_overhead_s": 0.01, "prefill_token_s": 0.0, "decode_seq_s": 0.0, "context_token_s": 0.0}


def make_engine(**overrides: object) -> tuple[Engine, list[tuple[float, Sequence]]]:
    cfg = build_config("gpu-8b", overrides)
    out: list[tuple[float, Sequence]] = []
    engine = Engine(cfg, EngineMetrics(cfg.model), lambda seqs, due: out.extend((due, s) for s in seqs))
    return engine, out


def seq(
    loop: asyncio.AbstractEventLoop, prompt: int, output: int, name: str = "s", hashes: list[int] | None = None
) -> Sequence:
    return Sequence(
        id=name,
        api="completions",
        path="/v1/completions",
        stream=False,
        model="m",
        created=0,
        prompt_len=prompt,
        block_hashes=hashes or [],
        max_tokens=output,
        target=output,
        arrival=0.0,
        done=loop.create_future(),
    )


def run(engine: Engine, until_idle: int = 10_000) -> float:
    """Drive the real scheduler step by step on a virtual clock; returns the end time."""
    t = 0.0
    for _ in range(until_idle):
        if not engine.running and not engine.waiting:
            return t
        scheduled, cost = engine.schedule(t)
        assert scheduled, "engine stuck"
        t += cost
        engine.complete(scheduled, t)
    raise AssertionError("did not finish")


def test_step_time_model_and_one_token_per_decode_step(loop: asyncio.AbstractEventLoop) -> None:
    engine, _ = make_engine(
        step_overhead_s=0.01,
        prefill_token_s=0.001,
        decode_seq_s=0.0001,
        context_token_s=0.0,
        enable_prefix_caching=False,
    )
    a = seq(loop, 100, 3)
    engine.submit(a)
    run(engine)
    due = a.token_due
    assert due[0] == pytest.approx(0.01 + 0.1)  # prefill of 100 tokens samples token 1
    assert [round(d2 - d1, 9) for d1, d2 in itertools.pairwise(due)] == [0.0101, 0.0101]
    assert a.queue_exit == 0.0 and engine.free_blocks == engine.config.num_kv_blocks


def test_max_num_seqs_bounds_the_batch(loop: asyncio.AbstractEventLoop) -> None:
    engine, _ = make_engine(max_num_seqs=4, **TEN_MS_STEPS)
    seqs = [seq(loop, 10, 5, f"s{i}") for i in range(8)]
    for s in seqs:
        engine.submit(s)
    end = run(engine)
    assert end == pytest.approx(0.10)  # two waves of 5 steps
    assert {s.queue_exit for s in seqs[:4]} == {0.0}
    assert {round(s.queue_exit or 0, 9) for s in seqs[4:]} == {0.05}


def test_chunked_prefill_spreads_a_long_prompt(loop: asyncio.AbstractEventLoop) -> None:
    engine, _ = make_engine(max_num_batched_tokens=64, enable_prefix_caching=False, **TEN_MS_STEPS)
    a = seq(loop, 200, 1)
    engine.submit(a)
    run(engine)
    assert a.token_due == [pytest.approx(0.04)]  # ceil(200 / 64) = 4 steps


def test_kv_exhaustion_preempts_and_recomputes(loop: asyncio.AbstractEventLoop) -> None:
    engine, _ = make_engine(num_kv_blocks=12, block_size=16, max_model_len=190)
    seqs = [seq(loop, 40, 100, f"s{i}") for i in range(3)]
    for s in seqs:
        engine.submit(s)
    run(engine)
    assert all(s.out == 100 for s in seqs)
    assert sum(s.preemptions for s in seqs) > 0
    preempted = engine.metrics.registry.get_sample_value(
        "vllm:num_preemptions_total", {"model_name": engine.config.model}
    )
    assert preempted == sum(s.preemptions for s in seqs)
    assert engine.free_blocks == 12


def test_prefix_cache_skips_prefill_of_a_repeated_prompt(loop: asyncio.AbstractEventLoop) -> None:
    engine, _ = make_engine(step_overhead_s=0.0, prefill_token_s=0.001, decode_seq_s=0.0, context_token_s=0.0)
    toks = [str(i) for i in range(100)]
    first = seq(loop, 100, 1, "a", block_hashes(toks, 16))
    engine.submit(first)
    run(engine)
    second = seq(loop, 100, 1, "b", block_hashes(toks, 16))
    engine.submit(second)
    run(engine)
    assert first.cached_tokens == 0 and second.cached_tokens == 96
    assert second.token_due[0] == pytest.approx(0.004)  # only 4 tokens prefilled


def test_the_prefix_cache_remembers_at_most_prefix_cache_blocks(loop: asyncio.AbstractEventLoop) -> None:
    engine, _ = make_engine(prefix_cache_blocks=10)
    for i in range(20):  # 20 distinct prompts of 6 full blocks each
        engine.submit(seq(loop, 100, 1, f"p{i}", block_hashes([f"{i}:{t}" for t in range(100)], 16)))
        run(engine)
    assert len(engine.prefix_cache) == 10  # the most recent blocks, however many prompts came
    again = seq(loop, 100, 1, "last", block_hashes([f"19:{t}" for t in range(100)], 16))
    engine.submit(again)
    run(engine)
    assert again.cached_tokens == 96  # the latest prompt is still cached


def test_jitter_is_seeded(loop: asyncio.AbstractEventLoop) -> None:
    def step_times(seed: int, jitter: float) -> list[float]:
        engine, _ = make_engine(jitter=jitter, seed=seed, step_overhead_s=0.01, context_token_s=0.0)
        a = seq(loop, 10, 20)
        engine.submit(a)
        run(engine)
        return a.token_due

    assert step_times(1, 0.2) == step_times(1, 0.2)
    assert step_times(1, 0.2) != step_times(2, 0.2)
    plain = step_times(1, 0.0)
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(plain)}
    assert len(gaps) == 1  # no jitter: every decode step costs the same


def test_leak_makes_each_step_longer_by_the_minute(loop: asyncio.AbstractEventLoop) -> None:
    def step_cost(leak: float, minutes: float) -> float:
        engine, _ = make_engine(**TEN_MS_STEPS, leak_step_s_per_min=leak)
        engine.submit(seq(loop, 10, 2))
        _, cost = engine.schedule(engine.started + 60.0 * minutes)
        return cost

    assert step_cost(0.0, 30.0) == pytest.approx(0.01)  # no leak: uptime changes nothing
    assert step_cost(0.002, 0.0) == pytest.approx(0.01)
    assert step_cost(0.002, 1.0) == pytest.approx(0.012)
    assert step_cost(0.002, 30.0) == pytest.approx(0.07)
