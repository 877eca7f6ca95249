"""Fast tests of loadgen's declarations and pure logic: distributions, validation messages,
chains, retry waits, prompts, SSE parsing (arrival schedules: ``test_arrival.py``)."""

from __future__ import annotations

import random
import re
import statistics
import time
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from loadgen import corpus as corpus_module
from loadgen.client import AttemptResult
from loadgen.config import PhaseCommand, TargetConfig, WorkerConfig
from loadgen.conversation import _trim_history
from loadgen.corpus import Corpus, _KnownCounts, estimate_tokens
from loadgen.errors import UserError, describe_validation_error
from loadgen.failures import parse_retry_after
from loadgen.prompts import PromptFactory, estimated_prompt_tokens
from loadgen.records import Attempt
from loadgen.retry import backoff, should_retry
from loadgen.spec import ArrivalSpec, ChainSpec, RetryPolicy, WorkloadSpec
from loadgen.sse import StreamParser


def one_line(exc: ValidationError) -> str:
    return describe_validation_error(exc)


# ---------------------------------------------------------------- distributions


@pytest.mark.parametrize(
    "dist, mean, tol",
    [
        ({"kind": "fixed", "value": 7}, 7, 0),
        ({"kind": "uniform", "min": 10, "max": 30}, 20, 1),
        ({"kind": "normal", "mean": 100, "stddev": 10}, 100, 2),
        ({"kind": "lognormal", "mean": 200, "stddev": 150}, 200, 12),
        ({"kind": "empirical", "values": [1, 100], "weights": [3, 1]}, 25.75, 3),
    ],
)
def test_length_distributions_sample_their_mean(dist: dict, mean: float, tol: float) -> None:
    w = WorkloadSpec(name="w", prompt={"kind": "synthetic", "tokens": dist})
    rng = random.Random(1)
    values = [w.prompt.tokens.sample(rng) for _ in range(4000)]
    assert abs(statistics.fmean(values) - mean) <= tol
    assert min(values) >= 0


def test_bare_int_is_a_fixed_length_and_clamps_apply() -> None:
    w = WorkloadSpec(
        name="w",
        prompt={"kind": "synthetic", "tokens": 12},
        output={"kind": "normal", "mean": 10, "stddev": 50, "min": 5, "max": 15},
    )
    assert w.prompt.tokens.kind == "fixed" and w.prompt.tokens.value == 12
    rng = random.Random(0)
    assert all(5 <= w.output.sample(rng) <= 15 for _ in range(500))


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"name": "w", "prompt": {"kind": "synthetic", "tokens": {"kind": "uniform", "min": 5, "max": 1}}}, "prompt"),
        ({"name": "w", "prompt": {"kind": "synthetic", "tokens": 3, "colour": 1}}, "colour"),
        ({"name": "w", "prompt": {"kind": "synthetic", "tokens": 3}, "api": "chatty"}, "api"),
        (
            {
                "name": "w",
                "prompt": {"kind": "synthetic", "tokens": {"kind": "empirical", "values": [1, 2], "weights": [1]}},
            },
            "prompt",
        ),
        (
            {"name": "w", "prompt": {"kind": "synthetic", "tokens": 3}, "api": "completions", "session": {"turns": 3}},
            "(top level)",
        ),
    ],
)
def test_invalid_declarations_name_their_field(bad: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        WorkloadSpec.model_validate(bad)
    line = one_line(info.value)
    assert "\n" not in line and field in line


def test_unreadable_dataset_is_one_line_naming_field_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(ValidationError) as info:
        WorkerConfig.model_validate(
            {
                "run_id": "r",
                "redis_url": "redis://127.0.0.1:1/0",
                "target": {"base_url": "http://127.0.0.1:1/v1", "model": "m"},
                "workloads": [{"name": "w", "prompt": {"kind": "jsonl", "path": str(missing)}}],
            }
        )
    line = one_line(info.value)
    assert line.startswith("workloads[0].prompt") and ".path:" in line and str(missing) in line
    assert "\n" not in line


def test_bad_jsonl_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "reqs.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}\n{"messages": 3}\n')
    w = WorkloadSpec(name="w", prompt={"kind": "jsonl", "path": str(path)})
    with pytest.raises(UserError, match=r"workloads\[2\]\.prompt\.path: .*line 2"):
        PromptFactory(w, where="workloads[2].prompt")


def test_jsonl_and_sharegpt_sources(tmp_path: Path) -> None:
    jl = tmp_path / "r.jsonl"
    jl.write_text(
        '{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}], '
        '"max_tokens": 9}\n'
    )
    conv = PromptFactory(WorkloadSpec(name="a", prompt={"kind": "jsonl", "path": str(jl)})).conversation(
        random.Random(0)
    )
    assert conv.messages[0]["role"] == "system" and conv.max_tokens == 9
    sg = tmp_path / "sg.json"
    sg.write_bytes(
        orjson.dumps(
            [
                {
                    "conversations": [
                        {"from": "human", "value": "first question"},
                        {"from": "gpt", "value": "one two three four"},
                        {"from": "human", "value": "second"},
                        {"from": "gpt", "value": "five six"},
                    ]
                }
            ]
        )
    )
    conv = PromptFactory(WorkloadSpec(name="b", prompt={"kind": "sharegpt", "path": str(sg)})).conversation(
        random.Random(0)
    )
    assert conv.messages == [{"role": "user", "content": "first question"}]
    assert conv.max_tokens == 4 and conv.followups == [("second", 2)]


def test_synthetic_long_context_and_shared_prefix_lengths() -> None:
    rng = random.Random(3)
    w = WorkloadSpec(
        name="w",
        prompt={"kind": "long_context", "tokens": 5000, "question": "Why?"},
        system_prefix={"groups": 2, "tokens": 300},
    )
    f = PromptFactory(w, seed=1)
    conv = f.conversation(rng)
    assert conv.messages[0]["role"] == "system" and estimate_tokens(conv.messages[0]["content"]) == 300
    assert estimate_tokens(conv.messages[1]["content"]) == 5000 + 2
    prefixes = {f.conversation(rng).messages[0]["content"] for _ in range(40)}
    assert len(prefixes) == 2  # every request shares one of the two group prefixes
    corpus = Corpus.load()
    assert estimate_tokens(corpus.window(len(corpus) + 10, 0)) == len(corpus) + 10  # wraps around


_SCAN = re.compile(r"[^\W_]+|[^\w\s]|_")  # the corpus's documented token rule, scanned in full


def test_long_context_prompts_cost_a_fraction_of_one_scan_and_count_exactly() -> None:
    """Building (and counting, as each record does) a 16k-token prompt must not block the worker's
    loop: it costs far less than scanning the text once. A ratio in one run, no absolute timing."""
    w = WorkloadSpec(name="lc", prompt={"kind": "long_context", "tokens": 16000, "question": "Why?"}, output=8)
    factory = PromptFactory(w, seed=1)
    rng = random.Random(5)

    def build() -> tuple[int, str]:
        conv = factory.conversation(rng)
        return estimated_prompt_tokens(conv.messages), conv.messages[-1]["content"]

    build()
    built_s, scan_s, prompts = [], [], []
    for _ in range(5):
        t0 = time.perf_counter()
        batch = [build() for _ in range(10)]
        built_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _, text in batch:
            _SCAN.findall(text)
        scan_s.append(time.perf_counter() - t0)
        prompts += batch
    assert min(built_s) < 0.25 * min(scan_s), (min(built_s), min(scan_s))
    assert len({text for _, text in prompts}) == len(prompts)  # distinct windows: no accidental shared prefix
    for counted, text in prompts:
        assert counted == len(_SCAN.findall(text)) == 16000 + 2
    corpus = Corpus.load()
    for start in (0, len(corpus) - 3, len(corpus) // 2):  # wrapped windows keep their count too
        assert len(_SCAN.findall(corpus.window(2 * len(corpus) + 5, start))) == 2 * len(corpus) + 5


def test_remembered_token_counts_stay_bounded_and_keep_the_texts_in_use() -> None:
    """Every synthetic prompt is a new string and its count is remembered when it is made: over a
    long run what is remembered (and so kept alive) stays within the bound, least recently used
    out first, while a shared prefix looked up by every request stays known."""
    known = _KnownCounts(max_chars=50_000)
    corpus = Corpus.load()
    rng = random.Random(3)
    prefix = corpus.sample(300, rng)
    known.remember(prefix, 300)
    made = 0
    for _ in range(3000):
        text = corpus.sample(rng.randint(50, 200), rng)
        known.remember(text, 7)
        made += len(text)
        assert known.get(prefix) == 300  # a hit makes it the most recently used again
        assert known.get(text) == 7
        assert known.chars <= known.max_chars
    assert made > 30 * known.max_chars
    assert known.chars == sum(len(t) for t in known.counts)
    known.remember(corpus.text, 1)  # larger than the whole bound: not remembered, nothing pushed out
    assert known.get(corpus.text) is None and known.get(prefix) == 300


def test_prompt_counts_are_exact_after_the_cache_forgot_them() -> None:
    """A worker's prompts outgrow the module's cache of counts within minutes: the cache stays within
    its bound, and a prompt whose count it dropped is counted again, to the same number."""
    w = WorkloadSpec(name="lc", prompt={"kind": "long_context", "tokens": 2000, "question": "Why?"}, output=8)
    factory = PromptFactory(w, seed=1)
    rng = random.Random(2)
    first = factory.conversation(rng).messages
    made = 0
    while made < 2 * corpus_module._KNOWN.max_chars:
        made += len(factory.conversation(rng).messages[-1]["content"])
        assert corpus_module._KNOWN.chars <= corpus_module._KNOWN.max_chars
    assert corpus_module._KNOWN.get(first[-1]["content"]) is None
    assert estimated_prompt_tokens(first) == len(_SCAN.findall(first[-1]["content"])) == 2000 + 2


def test_session_history_is_trimmed_by_the_counts_kept_beside_it() -> None:
    messages = [{"role": "system", "content": "s"}] + [{"role": r, "content": str(i)} for i, r in enumerate("uaua")]
    counts = [5, 10, 20, 30, 40]
    _trim_history(messages, counts, 80)
    assert [m["content"] for m in messages] == ["s", "2", "3"] and counts == [5, 30, 40]
    _trim_history(messages, counts, 1)  # never the system message nor the newest turn
    assert [m["content"] for m in messages] == ["s", "3"] and counts == [5, 40]


# ---------------------------------------------------------------- chains, phases, config


def test_chain_dag_waves_and_errors() -> None:
    chain = ChainSpec(
        steps=[
            {"id": "plan", "prompt": "Plan: {{input}}"},
            {"id": "a", "prompt": "A {{plan}}"},
            {"id": "b", "prompt": "B {{plan}}"},
            {"id": "join", "prompt": "{{a}} and {{b}}"},
        ]
    )
    assert [[s.id for s in wave] for wave in chain.order()] == [["plan"], ["a", "b"], ["join"]]
    with pytest.raises(ValidationError, match="unknown step 'x'"):
        ChainSpec(steps=[{"id": "a", "prompt": "{{x}}"}])
    with pytest.raises(ValidationError, match="cycle"):
        ChainSpec(steps=[{"id": "a", "prompt": "{{b}}"}, {"id": "b", "prompt": "{{a}}"}])


def test_phase_command_rules() -> None:
    with pytest.raises(ValidationError, match="rate"):
        PhaseCommand(name="p", mode="open", arrival={"kind": "poisson"})
    with pytest.raises(ValidationError, match="users"):
        PhaseCommand(name="p", mode="closed")
    p = PhaseCommand(
        name="p", mode="open", rate=30, worker_count=4, max_concurrency=10, arrival={"kind": "gamma", "burstiness": 0.5}
    )
    assert p.worker_rate == 7.5 and p.worker_max_concurrency == 3
    assert PhaseCommand.model_validate(p.model_dump(mode="json")) == p
    with pytest.raises(ValidationError, match="burstiness"):
        ArrivalSpec(kind="poisson", burstiness=2)


def test_worker_config_file_and_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = {
        "run_id": "r1",
        "redis_url": "redis://127.0.0.1:6379/0",
        "target": {"base_url": "http://127.0.0.1:8000/v1", "model": "m", "api_key_env": "FL_TEST_KEY"},
        "workloads": [{"name": "w", "prompt": {"kind": "synthetic", "tokens": 5}}],
    }
    path = tmp_path / "worker.json"
    path.write_bytes(orjson.dumps(cfg))
    monkeypatch.setenv("FINISHLINE_WORKER_CONFIG", str(path))
    loaded = WorkerConfig.load()
    assert loaded.target.model == "m"
    monkeypatch.setenv("FL_TEST_KEY", "sk-secret")
    assert loaded.target.api_key() == "sk-secret"
    assert "sk-secret" not in loaded.model_dump_json()
    monkeypatch.delenv("FL_TEST_KEY")
    with pytest.raises(UserError, match="FL_TEST_KEY"):
        loaded.target.api_key()
    path.write_bytes(orjson.dumps({**cfg, "workloads": []}))
    with pytest.raises(UserError, match=r"workloads: "):
        WorkerConfig.load()
    monkeypatch.setenv("FINISHLINE_WORKER_CONFIG", str(tmp_path / "missing.json"))
    with pytest.raises(UserError, match="cannot read"):
        WorkerConfig.load()
    with pytest.raises(ValidationError):
        TargetConfig(base_url="ftp://x", model="m")


# ---------------------------------------------------------------- retries


def _result(status: int | None, error: str | None, retry_after: float | None = None) -> AttemptResult:
    return AttemptResult(Attempt(number=1, sent=0, end=0, status=status, error=error), retry_after=retry_after)


def test_retry_decisions_and_waits() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_initial=0.1, backoff_multiplier=2, backoff_max=0.3, jitter=0.0)
    assert should_retry(policy, _result(429, "http_429"))
    assert not should_retry(policy, _result(400, "http_4xx"))
    assert should_retry(policy, _result(None, "reset"))
    assert not should_retry(policy, _result(200, "malformed_chunk"))
    assert not should_retry(policy, _result(200, None))
    rng = random.Random(0)
    assert [backoff(policy, n, None, rng) for n in (1, 2, 3, 4)] == pytest.approx([0.1, 0.2, 0.3, 0.3])
    assert backoff(policy, 1, 2.5, rng) == 2.5  # Retry-After wins when longer
    capped = RetryPolicy(max_retry_after=1.0, jitter=0.0)
    assert backoff(capped, 1, 50.0, rng) == 1.0
    jittered = RetryPolicy(backoff_initial=1.0, jitter=0.5)
    assert all(1.0 <= backoff(jittered, 1, None, rng) <= 1.5 for _ in range(100))


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a past date: no wait


# ---------------------------------------------------------------- SSE parsing


def _chat_event(text: str, completion: int | None = None, spaced: bool = False) -> bytes:
    obj: dict = {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": text}}]}
    if completion is not None:
        obj["usage"] = {"prompt_tokens": 11, "completion_tokens": completion, "total_tokens": 11 + completion}
    import json

    raw = json.dumps(obj) if spaced else orjson.dumps(obj).decode()
    return f"data: {raw}\n\n".encode()


@pytest.mark.parametrize("spaced", [False, True])
def test_parser_counts_tokens_per_chunk_across_split_reads(spaced: bool) -> None:
    final = (
        b'data: {"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":6,'
        b'"prompt_tokens_details":{"cached_tokens":4}}}\n\ndata: [DONE]\n\n'
    )
    stream = (
        _chat_event("", 0, spaced)
        + _chat_event(" a b", 2, spaced)
        + _chat_event(' c "d"', 5, spaced)
        + _chat_event(" e", 6, spaced)
        + final
    )
    parser = StreamParser(sent=100.0, chat=True, want_text=True)
    for i in range(0, len(stream), 7):  # arbitrary split points, as recv returns them
        parser.feed(stream[i : i + 7], 100.0 + i / 1e4)
    assert parser.finish() == (None, None)
    assert parser.chunk_tokens == [2, 3, 1] and sum(parser.chunk_tokens) == parser.token_count() == 6
    assert parser.prompt_tokens == 11 and parser.cached_tokens == 4 and not parser.estimated
    assert parser.text() == ' a b c "d" e' and parser.response_id == "chatcmpl-1"
    assert parser.first_token is not None and parser.first_token > 100.0


def test_parser_without_usage_estimates_and_classifies_endings() -> None:
    parser = StreamParser(sent=0.0, chat=True, want_text=False)
    parser.feed(_chat_event("x") + _chat_event("y") + b"data: [DONE]\n\n", 1.0)
    assert parser.finish() == (None, None) and parser.token_count() == 2 and parser.estimated
    cut = StreamParser(sent=0.0, chat=True, want_text=False)
    cut.feed(_chat_event("x"), 1.0)
    assert cut.finish()[0] == "incomplete_stream"
    empty = StreamParser(sent=0.0, chat=True, want_text=False)
    empty.feed(_chat_event("") + b"data: [DONE]\n\n", 1.0)
    assert empty.finish()[0] == "empty_output"
    bad = StreamParser(sent=0.0, chat=True, want_text=False)
    bad.feed(b'data: {"malformed\n\n', 1.0)
    assert bad.finish()[0] == "malformed_chunk"
    crlf = StreamParser(sent=0.0, chat=False, want_text=True)
    crlf.feed(b'data: {"choices":[{"text":"hi"}]}\r\n\r\n: keep-alive\r\n\r\ndata: [DONE]\r\n\r\n', 1.0)
    assert crlf.finish() == (None, None) and crlf.text() == "hi"


def test_relative_dataset_path_resolves_against_the_scenario_folder(tmp_path: Path) -> None:
    (tmp_path / "reqs.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    data = {"name": "w", "prompt": {"kind": "jsonl", "path": "reqs.jsonl"}}
    w = WorkloadSpec.model_validate(data, context={"base_dir": tmp_path})
    assert w.prompt.path == tmp_path / "reqs.jsonl"
    with pytest.raises(ValidationError, match=r"cannot read .*elsewhere/reqs\.jsonl"):
        WorkloadSpec.model_validate(data, context={"base_dir": tmp_path / "elsewhere"})


def test_parser_final_usage_without_running_counts_is_not_a_token_chunk() -> None:
    final = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":9}}\n\ndata: [DONE]\n\n'
    parser = StreamParser(sent=0.0, chat=True, want_text=False)
    parser.feed(_chat_event(" a b c") + _chat_event(" d e f") + _chat_event(" g h i") + final, 1.0)
    assert parser.finish() == (None, None)
    assert parser.chunk_tokens == [1, 1, 1] and parser.token_count() == 9 and not parser.estimated
    assert parser.prompt_tokens == 3
    reasoning = StreamParser(sent=0.0, chat=True, want_text=False)
    reasoning.feed(b'data: {"choices":[{"delta":{"content":null,"reasoning_content":"hmm"}}]}\n\n', 2.0)
    assert reasoning.first_token == 2.0
    err = StreamParser(sent=0.0, chat=True, want_text=False)
    err.feed(b'data: {"error":{"message":"boom","code":500}}\n\n', 1.0)
    assert err.finish()[0] == "http_5xx"


def test_parser_final_usage_on_a_finish_chunk_is_not_a_token_chunk() -> None:
    """llama.cpp's /v1/completions ends with a finish chunk that carries the usage and no text."""
    finish = (
        b'data: {"choices":[{"text":"","index":0,"finish_reason":"length"}],'
        b'"usage":{"completion_tokens":3,"prompt_tokens":5,"total_tokens":8}}\n\ndata: [DONE]\n\n'
    )
    parser = StreamParser(sent=0.0, chat=False, want_text=False)
    for i, word in enumerate((b" a", b" b", b" c")):
        parser.feed(b'data: {"choices":[{"text":"' + word + b'","index":0}]}\n\n', 1.0 + i)
    parser.feed(finish, 4.0)
    assert parser.finish() == (None, None)
    assert parser.chunk_tokens == [1, 1, 1] and parser.token_count() == 3 and not parser.estimated
    assert parser.prompt_tokens == 5


def test_parser_role_chunk_usage_is_a_running_count_not_the_final_report() -> None:
    """vLLM's continuous usage puts ``completion_tokens: 0`` on the role chunk; a stream cut after
    two tokens is incomplete with 2 tokens, not a complete reply of 0."""
    role = (
        b'data: {"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":""}}],'
        b'"usage":{"prompt_tokens":9,"total_tokens":9,"completion_tokens":0}}\n\n'
    )
    parser = StreamParser(sent=0.0, chat=True, want_text=False)
    parser.feed(role, 1.0)
    for n, word in enumerate((b" the", b" of"), 1):
        parser.feed(
            b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"' + word + b'"}}],'
            b'"usage":{"prompt_tokens":9,"completion_tokens":' + str(n).encode() + b"}}\n\n",
            1.0 + n,
        )
    assert parser.finish()[0] == "incomplete_stream"
    assert parser.chunk_tokens == [1, 1] and parser.token_count() == 2 and parser.prompt_tokens == 9
    parser.feed(
        b'data: {"id":"x","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}\n\ndata: [DONE]\n\n', 4.0
    )
    assert parser.finish() == (None, None) and parser.output_tokens == 2


def test_locust_option_defaults_are_built_once_per_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A spawn message makes a Locust worker ask for the option defaults once per option;
    building the parser each time blocked the event loop ~60 ms at every phase change."""
    from locust import argument_parser

    import loadgen.locustfile  # noqa: F401  (applies the fix, as a worker loading it does)

    built = []
    original = argument_parser.get_empty_argument_parser
    monkeypatch.setattr(argument_parser, "get_empty_argument_parser", lambda: built.append(1) or original())
    argument_parser.default_args_dict.cache_clear()
    first = argument_parser.default_args_dict()
    options = {"host": "h", "num_users": 3, "my_custom_option": 1}
    custom = {k: v for k, v in options.items() if k not in argument_parser.default_args_dict()}
    assert custom == {"my_custom_option": 1} and "host" in first
    assert len(built) == 1
