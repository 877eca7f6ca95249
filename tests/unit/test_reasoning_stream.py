"""Reasoning and tool-call streams: what the parser records, what the metrics define, and that
records written before these fields existed still load."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from coordinator.bridge.aggregate import record_increments
from coordinator.bridge.exposition import BridgeCollector, Snapshot
from coordinator.results.report_tables import percentile_table
from coordinator.results.summarize import summarize
from coordinator.results.table import write_csv
from dashboards import names
from loadgen import metrics
from loadgen.records import Attempt, RequestRecord
from loadgen.request import Reply
from loadgen.spec import ChainSpec, WorkloadSpec
from loadgen.sse import StreamParser
from tests.factories import record

ROLE = b'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
DONE = b"data: [DONE]\n\n"


def delta(fields: dict[str, object], usage: dict[str, int] | None = None, spaced: bool = False) -> bytes:
    """One vLLM chunk whose delta holds ``fields`` (``spaced``: as json.dumps writes it)."""
    event: dict[str, object] = {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": fields, "finish_reason": None}]}
    if usage is not None:
        event["usage"] = usage
    raw = orjson.dumps(event)
    if spaced:
        raw = raw.replace(b'":', b'": ').replace(b",", b", ")
    return b"data: " + raw + b"\n\n"


def final_usage(completion: int, reasoning: int | None = None) -> bytes:
    usage: dict[str, object] = {"prompt_tokens": 5, "completion_tokens": completion, "total_tokens": 5 + completion}
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return b"data: " + orjson.dumps({"id": "chatcmpl-1", "choices": [], "usage": usage}) + b"\n\n"


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
@pytest.mark.parametrize("spaced", [False, True])
def test_reasoning_then_answer_records_both_first_times_and_the_servers_reasoning_count(key: str, spaced: bool) -> None:
    parser = StreamParser(sent=0.0, chat=True, want_text=True)
    parser.feed(ROLE, 0.5)
    for i, now in enumerate((1.0, 1.1, 1.2)):
        parser.feed(delta({"content": None, key: f" think{i}"}, spaced=spaced), now)
    parser.feed(delta({"content": " Hello"}, spaced=spaced) + delta({"content": " world"}, spaced=spaced), 1.5)
    parser.feed(final_usage(5, reasoning=3) + DONE, 1.6)
    assert parser.finish() == (None, None)
    assert parser.first_token == 1.0 and parser.first_answer == 1.5
    assert parser.answer_chunk == 3 and len(parser.chunk_us) == 5
    assert parser.reasoning_count() == 3 and parser.token_count() == 5
    assert parser.text() == " Hello world"  # the reasoning is not the reply


def test_reasoning_tokens_are_counted_from_the_events_when_the_server_does_not_report_them() -> None:
    running = StreamParser(sent=0.0, chat=True, want_text=False)  # vLLM's continuous usage stats
    running.feed(ROLE, 0.5)
    running.feed(delta({"reasoning_content": " a b"}, usage={"prompt_tokens": 5, "completion_tokens": 2}), 1.0)
    running.feed(delta({"reasoning_content": " c"}, usage={"prompt_tokens": 5, "completion_tokens": 3}), 1.1)
    running.feed(delta({"content": " x"}, usage={"prompt_tokens": 5, "completion_tokens": 4}), 1.2)
    running.feed(final_usage(4) + DONE, 1.3)
    assert running.reasoning_count() == 3 and running.token_count() == 4 and running.chunk_tokens == [2, 1, 1]
    plain = StreamParser(sent=0.0, chat=True, want_text=False)  # no usage at all: one token a chunk
    plain.feed(delta({"reasoning_content": " a"}) + delta({"reasoning_content": " b"}) + delta({"content": "x"}), 1.0)
    plain.feed(DONE, 1.1)
    assert plain.reasoning_count() == 2 and plain.token_count() == 3 and plain.estimated


def test_a_stream_without_reasoning_has_its_first_answer_at_its_first_token() -> None:
    parser = StreamParser(sent=0.0, chat=True, want_text=False)
    parser.feed(ROLE + delta({"content": " a"}), 1.0)
    parser.feed(delta({"content": " b"}) + final_usage(2) + DONE, 1.2)
    assert parser.first_token == parser.first_answer == 1.0 and parser.answer_chunk == 0
    assert parser.reasoning_count() == 0


def test_a_reasoning_only_reply_has_no_answer_but_is_not_empty() -> None:
    parser = StreamParser(sent=0.0, chat=True, want_text=False)
    parser.feed(ROLE + delta({"reasoning_content": " hmm"}) + final_usage(1, reasoning=1) + DONE, 1.0)
    assert parser.finish() == (None, None)
    assert parser.first_token == 1.0 and parser.first_answer is None and parser.answer_chunk is None


def test_tool_call_deltas_are_answer_output_and_their_arguments_are_kept_per_call() -> None:
    parser = StreamParser(sent=0.0, chat=True, want_text=True)
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "search", "arguments": ""}}
    parser.feed(ROLE + delta({"reasoning_content": " plan"}), 1.0)
    parser.feed(delta({"tool_calls": [head]}), 1.1)
    parser.feed(delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"q": "cheap'}}]}), 1.2)
    parser.feed(delta({"tool_calls": [{"index": 0, "function": {"arguments": ' flights\\"x"}'}}]}), 1.3)
    second = {"index": 1, "id": "call_2", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    parser.feed(delta({"tool_calls": [second]}, spaced=True), 1.4)
    finish = b'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n'
    parser.feed(finish + final_usage(5, reasoning=1) + DONE, 1.5)
    assert parser.finish() == (None, None)
    assert parser.first_token == 1.0 and parser.first_answer == 1.1 and parser.answer_chunk == 1
    assert len(parser.chunk_us) == 5 and parser.token_count() == 5  # the finish chunk carries none
    assert parser.tool_arguments() == ['{"q": "cheap flights\\"x"}', "{}"]
    assert parser.text() == ""
    assert orjson.loads(parser.tool_arguments()[0]) == {"q": 'cheap flights"x'}


def test_an_empty_tool_calls_array_is_no_output() -> None:
    parser = StreamParser(sent=0.0, chat=True, want_text=False)
    parser.feed(ROLE + delta({"content": None, "tool_calls": []}) + DONE, 1.0)
    assert parser.finish()[0] == "empty_output"


def test_the_answer_metrics_over_a_reasoning_attempt() -> None:
    # 3 reasoning chunks at 100, 110, 120 ms, then 3 answer chunks at 200, 210, 230 ms; end at 230 ms
    attempt = Attempt(
        number=1,
        sent=10.0,
        end=10.23,
        first_token=10.1,
        first_answer=10.2,
        answer_chunk=3,
        chunk_us=[100_000, 110_000, 120_000, 200_000, 210_000, 230_000],
        chunk_tokens=[1, 1, 1, 1, 1, 2],
        output_tokens=7,
        reasoning_tokens=3,
    )
    assert metrics.ttft(attempt) == pytest.approx(0.1) and metrics.ttfot(attempt) == pytest.approx(0.2)
    assert attempt.answer_tokens == 4
    assert metrics.tpot(attempt) == pytest.approx((0.23 - 0.1) / 6)  # over every output token
    assert metrics.tpot_answer(attempt) == pytest.approx((0.23 - 0.2) / 3)
    assert list(metrics.itl(attempt)) == pytest.approx([0.01, 0.01, 0.08, 0.01, 0.01, 0.01])
    assert list(metrics.itl_answer(attempt)) == pytest.approx([0.01, 0.01, 0.01])  # not the 80 ms wait
    plain = Attempt(
        number=1,
        sent=0.0,
        end=0.3,
        first_token=0.1,
        first_answer=0.1,
        answer_chunk=0,
        chunk_us=[100_000, 200_000, 300_000],
        chunk_tokens=[1, 1, 1],
        output_tokens=3,
        reasoning_tokens=0,
    )
    assert metrics.ttfot(plain) == metrics.ttft(plain) and metrics.tpot_answer(plain) == metrics.tpot(plain)
    assert list(metrics.itl_answer(plain)) == list(metrics.itl(plain))
    unanswered = Attempt(number=1, sent=0.0, end=0.3, first_token=0.1, output_tokens=3, reasoning_tokens=3)
    assert metrics.ttfot(unanswered) is None and metrics.tpot_answer(unanswered) is None
    assert list(metrics.itl_answer(unanswered)) == []


def test_a_record_written_before_reasoning_was_counted_still_loads() -> None:
    rec = record(ttft=0.05, tokens=10)
    data = orjson.loads(rec.to_json())
    for attempt in data["attempts"]:
        for name in ("first_answer", "answer_chunk", "reasoning_tokens"):
            del attempt[name]
    old = RequestRecord.from_dict(data)
    final = old.final
    assert final.first_answer is None and final.answer_chunk is None and final.reasoning_tokens is None
    assert final.answer_tokens == final.output_tokens == 10 and metrics.reasoning_tokens(old) == 0
    assert metrics.ttfot(final) is None and metrics.ttft(final) == pytest.approx(0.05)
    assert RequestRecord.from_json(old.to_json()) == old
    assert metrics.tpot_answer(final) is None and metrics.tpot(final) is not None


def test_tools_in_a_workload_and_a_chain_step_and_a_reply_as_the_next_input() -> None:
    tool = {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}
    chain = ChainSpec.model_validate(
        {"steps": [{"id": "call", "prompt": "{{input}}", "tools": [tool]}, {"id": "use", "prompt": "Use {{call}}"}]}
    )
    assert chain.steps[0].tools is not None and chain.steps[0].tools[0].function.name == "search"
    assert chain.steps[1].dependencies() == ["call"]
    w = WorkloadSpec.model_validate({"name": "w", "prompt": {"kind": "synthetic", "tokens": 8}, "tools": [tool]})
    assert w.tools is not None
    with pytest.raises(ValueError, match="tools need api: chat"):
        WorkloadSpec.model_validate(
            {"name": "w", "api": "completions", "prompt": {"kind": "synthetic", "tokens": 8}, "tools": [tool]}
        )
    with pytest.raises(ValueError, match="function"):
        ChainSpec.model_validate({"steps": [{"id": "a", "prompt": "x", "tools": [{"type": "function"}]}]})
    assert Reply("text", ('{"q": 1}',)).as_input() == 'text\n{"q": 1}'
    assert Reply("", ('{"q": 1}', "{}")).as_input() == '{"q": 1}\n{}'


def test_the_summary_and_report_show_the_answer_apart_from_the_reasoning() -> None:
    thinking = [record(t0=100.0 + i, ttft=0.05, itl=0.01, tokens=10, reasoning=4) for i in range(5)]
    plain = record(t0=200.0, ttft=0.05, itl=0.01, tokens=10)
    group = summarize([*thinking, plain]).all
    assert group.reasoning_tokens == 20 and group.answer_tokens == 40 and group.output_tokens == 60
    answer = group.latency_ms_answer
    assert answer is not None
    ttfot = sorted(1000 * (metrics.ttfot(r.final) or 0) for r in [*thinking, plain])
    assert answer.ttfot.n == 6 and answer.ttfot.min == pytest.approx(ttfot[0]) == pytest.approx(50.0)
    assert answer.ttfot.max == pytest.approx(90.0)  # 4 reasoning tokens 10 ms apart before the answer
    assert group.latency_ms.ttft.max == pytest.approx(50.0)  # TTFT: the first token of any kind
    itl = [g for r in [*thinking, plain] for g in metrics.itl_answer(r.final)]
    assert answer.itl_answer.n == len(itl) == 5 * 5 + 9 and group.latency_ms.itl.n == 6 * 9
    tpot = [1000 * (metrics.tpot_answer(r.final) or 0) for r in [*thinking, plain]]
    assert (answer.tpot_answer.min, answer.tpot_answer.max) == pytest.approx((min(tpot), max(tpot)))
    assert answer.tpot_answer.max == pytest.approx((141 - 90) / 5)  # E2E 141 ms, TTFOT 90 ms, 6 answer tokens
    table = percentile_table(group)
    assert "ttfot" in table and "itl_answer" in table and "Reasoning: 20 of 60 output tokens" in table
    without = summarize([plain]).all
    assert without.reasoning_tokens == 0 and "ttfot" not in percentile_table(without)
    data = orjson.loads(plain.to_json())
    for attempt in data["attempts"]:
        del attempt["first_answer"], attempt["answer_chunk"], attempt["reasoning_tokens"]
    old = summarize([RequestRecord.from_dict(data)]).all
    assert old.latency_ms_answer is not None and old.latency_ms_answer.ttfot.n == 0
    assert old.latency_ms_answer.itl_answer.n == 0 and old.latency_ms.itl.n == 9


def test_the_bridge_exposes_ttfot_and_reasoning_tokens() -> None:
    thinking = [record(t0=100.0 + i, ttft=0.05, itl=0.01, tokens=10, reasoning=4) for i in range(3)]
    plain = record(t0=200.0, ttft=0.05, itl=0.01, tokens=10)
    inc: dict[str, float] = {}
    for r in [*thinking, plain]:
        record_increments(r, "scn", metrics.SloRule(), inc)
    collector = BridgeCollector("run", "scn", "sim")
    collector.update(Snapshot(aggregate=inc))
    registry = CollectorRegistry()
    registry.register(collector)
    samples = {
        (s.name, s.labels.get("le")): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    family = names.HIST["ttfot"]
    assert samples[(f"{family}_count", None)] == 4
    assert samples[(f"{family}_sum", None)] == pytest.approx(3 * 0.09 + 0.05)
    assert samples[(f"{family}_bucket", "0.075")] == 1 and samples[(f"{family}_bucket", "0.1")] == 4
    assert samples[(names.COUNTER["reasoning_tokens"], None)] == 12
    assert samples[(names.COUNTER["output_tokens"], None)] == 40


def test_the_csv_has_the_answer_columns_when_the_summary_has_them(tmp_path: Path) -> None:
    summary = summarize([record(t0=100.0, ttft=0.05, itl=0.01, tokens=10, reasoning=4)])
    write_csv(summary, tmp_path / "summary.csv")
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert rows[-1]["reasoning_tokens"] == "4" and rows[-1]["answer_tokens"] == "6"
    assert float(rows[-1]["ttfot_p50_ms"]) == pytest.approx(90.0) and float(rows[-1]["ttft_p50_ms"]) == pytest.approx(
        50.0
    )
