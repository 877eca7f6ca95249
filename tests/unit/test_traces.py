"""Trace replay without traffic: the three trace formats read row by row (filters, malformed lines
with their line numbers, ``finishline validate``), each row's prompt text, the replay's schedule
(window, speed, loop, the workers' shares) and the plan's replay step."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from coordinator.cli import main
from coordinator.plan.steps import REPLAY_TAIL, LocustStep, build_plan
from coordinator.scenario.loader import parse
from loadgen.config import PhaseCommand
from loadgen.corpus import Corpus, count_tokens
from loadgen.errors import UserError
from loadgen.prompts import PromptFactory
from loadgen.replay import ReplayCommand, schedule, wall_seconds, window_rows
from loadgen.spec import TracePrompt, WorkloadSpec
from loadgen.traces import TraceRow, TraceText, read_trace
from tests.paths import ROOT

SAMPLES = ROOT / "examples" / "traces"


def source(path: Path, fmt: str, **options: Any) -> TracePrompt:
    return TracePrompt.model_validate({"kind": "trace", "path": str(path), "format": fmt, **options})


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text))
    return path


def malformed(path: Path, fmt: str, **options: Any) -> str:
    with pytest.raises(UserError) as caught:
        read_trace(source(path, fmt, **options), "workloads[0].prompt.path")
    return str(caught.value)


# ---------------------------------------------------------------- the three formats


def test_mooncake_rows_in_time_order_with_their_hash_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.jsonl",
        """\
        {"timestamp": 1500, "input_length": 700, "output_length": 20, "hash_ids": [0, 2]}
        {"timestamp": 0, "input_length": 1024, "output_length": 8, "hash_ids": [0, 1]}

        {"timestamp": 250.5, "input_length": 3, "output_length": 0}
        """,
    )
    rows = read_trace(source(path, "mooncake"))
    assert rows == (
        TraceRow(0.0, 1024, 8, (0, 1)),
        TraceRow(0.2505, 3, 0, ()),
        TraceRow(1.5, 700, 20, (0, 2)),
    )


def test_azure_timestamps_with_seven_fractional_digits_and_a_zone(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.csv",
        """\
        TIMESTAMP,ContextTokens,GeneratedTokens
        2023-11-16 18:15:46.6805900,374,44
        2023-11-16 18:15:47.0000001,12,1
        2023-11-16T18:15:48+00:00,5,7
        """,
    )
    rows = read_trace(source(path, "azure"))
    assert [(r.input_tokens, r.output_tokens) for r in rows] == [(374, 44), (12, 1), (5, 7)]
    assert rows[1].time - rows[0].time == pytest.approx(0.3194101, abs=1e-6)
    assert rows[2].time - rows[0].time == pytest.approx(1.31941, abs=1e-6)


BURST = """\
    Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
    5,ChatGPT,472,18,490,Conversation log
    3,GPT-4,1087,79,1166,API log
    7,ChatGPT,20,0,20,API log
    9,GPT-4,33,2,35,Conversation log
    """


def test_burstgpt_rows_kept_by_model_and_log_type(tmp_path: Path) -> None:
    path = write(tmp_path, "b.csv", BURST)
    every = read_trace(source(path, "burstgpt"))
    assert [r.time for r in every] == [3.0, 5.0, 7.0, 9.0]
    chatgpt = read_trace(source(path, "burstgpt", model="ChatGPT"))
    assert [(r.time, r.input_tokens, r.output_tokens) for r in chatgpt] == [(5.0, 472, 18), (7.0, 20, 0)]
    both = read_trace(source(path, "burstgpt", model="GPT-4", log_type="Conversation log"))
    assert [r.time for r in both] == [9.0]
    assert "has no requests matching model and log_type" in malformed(path, "burstgpt", model="Claude")


@pytest.mark.parametrize(
    ("fmt", "text", "line", "words"),
    [
        (
            "mooncake",
            '{"timestamp": 0, "input_length": 5, "output_length": 1}\n{"timestamp": 1, "input_length": 5\n',
            2,
            "not valid JSON",
        ),
        (
            "mooncake",
            '{"timestamp": 0, "input_length": 5, "output_length": 1}\n\n{"timestamp": 1, "output_length": 1}\n',
            3,
            "input_length: missing",
        ),
        ("mooncake", '{"timestamp": -1, "input_length": 5, "output_length": 1}\n', 1, "timestamp: -1"),
        ("mooncake", '{"timestamp": 0, "input_length": 5.5, "output_length": 1}\n', 1, "input_length: 5.5"),
        (
            "mooncake",
            '{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": ["a"]}\n',
            1,
            "hash_ids: must be a list of integers",
        ),
        ("mooncake", "[1, 2]\n", 1, "not a JSON object"),
        ("azure", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1,2\nyesterday,1,2\n", 3, "TIMESTAMP"),
        ("azure", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1,-2\n", 2, "GeneratedTokens: '-2'"),
        ("azure", "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,1\n", 1, "header: needs the columns"),
        ("azure", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1\n", 2, "has 2 cells"),
        # a line the filters would leave out is checked too
        ("burstgpt", textwrap.dedent(BURST) + "11,GPT-4,10,5,99,API log\n", 6, "Total tokens: 99"),
        ("burstgpt", textwrap.dedent(BURST) + "soon,ChatGPT,10,5,15,API log\n", 6, "Timestamp: 'soon'"),
    ],
)
def test_a_malformed_line_is_one_error_with_file_line_and_field(
    tmp_path: Path, fmt: str, text: str, line: int, words: str
) -> None:
    path = tmp_path / f"trace.{'jsonl' if fmt == 'mooncake' else 'csv'}"
    path.write_text(text)
    message = malformed(path, fmt, **({"model": "ChatGPT"} if fmt == "burstgpt" else {}))
    assert message.startswith(f"workloads[0].prompt.path: {path} line {line}: "), message
    assert words in message, message
    assert "\n" not in message


def test_options_of_another_format_are_refused() -> None:
    with pytest.raises(ValidationError, match="BurstGPT traces only"):
        source(SAMPLES / "azure-sample.csv", "azure", model="GPT-4")
    with pytest.raises(ValidationError, match="Mooncake traces"):
        source(SAMPLES / "azure-sample.csv", "azure", block_size=16)
    with pytest.raises(ValidationError, match="no such file"):
        source(SAMPLES / "absent.csv", "azure")


@pytest.mark.parametrize(
    ("name", "fmt", "options", "rows"),
    [
        ("mooncake-sample.jsonl", "mooncake", {}, 35),
        ("azure-sample.csv", "azure", {}, 60),
        ("burstgpt-sample.csv", "burstgpt", {}, 80),
        ("burstgpt-sample.csv", "burstgpt", {"model": "ChatGPT", "log_type": "Conversation log"}, 27),
    ],
)
def test_the_shipped_samples_read(name: str, fmt: str, options: dict[str, str], rows: int) -> None:
    assert len(read_trace(source(SAMPLES / name, fmt, **options))) == rows


# ---------------------------------------------------------------- prompt text


def test_rows_sharing_hash_ids_share_their_blocks_text_and_lengths_are_exact() -> None:
    text = TraceText(Corpus.load(), block_size=64, seed=3)
    a = text.prompt(TraceRow(0.0, 150, 1, (10, 11, 12)), 0)  # 64 + 64 + 22
    b = text.prompt(TraceRow(1.0, 200, 1, (10, 11, 13, 14)), 1)  # 64 + 64 + 64 + 8
    c = text.prompt(TraceRow(2.0, 100, 1, (10,)), 2)  # 64, then 36 of its own
    assert [count_tokens(t) for t in (a, b, c)] == [150, 200, 100]
    shared = TraceText(Corpus.load(), block_size=64, seed=3).prompt(TraceRow(0.0, 128, 1, (10, 11)), 9)
    assert a.startswith(shared + " ") and b.startswith(shared + " ")
    block_10 = text.prompt(TraceRow(0.0, 64, 1, (10,)), 8)
    assert shared.startswith(block_10 + " ") and c.startswith(block_10 + " ")
    assert not c.startswith(shared[: len(block_10) + 40])
    assert a[len(shared) : len(shared) + 40] != b[len(shared) : len(shared) + 40]  # block 12 is not block 13
    # a block cut short is the start of the same block
    full = text.prompt(TraceRow(0.0, 64, 1, (12,)), 5)
    short = text.prompt(TraceRow(0.0, 22, 1, (12,)), 6)
    assert full.startswith(short)
    # another seed, another text; rows without hash ids share nothing
    assert TraceText(Corpus.load(), 64, seed=4).prompt(TraceRow(0.0, 128, 1, (10, 11)), 9) != shared
    plain = [text.prompt(TraceRow(0.0, 50, 1), i) for i in range(20)]
    assert len({p[:30] for p in plain}) == 20 and all(count_tokens(p) == 50 for p in plain)


def test_a_trace_workload_sends_each_rows_lengths_with_ignore_eos() -> None:
    prompt = {"kind": "trace", "path": str(SAMPLES / "mooncake-sample.jsonl"), "format": "mooncake"}
    workload = WorkloadSpec.model_validate({"name": "m", "prompt": prompt})
    factory = PromptFactory(workload, seed=1)
    assert factory.trace is not None
    rng = random.Random(0)
    for row in (0, 7, 34):
        conv = factory.conversation(rng, row)
        assert conv.max_tokens == factory.trace[row].output_tokens
        assert count_tokens(conv.messages[0]["content"]) == factory.trace[row].input_tokens
    # a phase that is not a replay takes the rows in time order
    firsts = [factory.conversation(rng).max_tokens for _ in range(3)]
    assert firsts == [r.output_tokens for r in factory.trace[:3]]
    assert workload.request_sampling.ignore_eos is True
    assert workload.sampling.ignore_eos is None  # what the user wrote is kept as written
    told = WorkloadSpec.model_validate({"name": "m", "prompt": prompt, "sampling": {"ignore_eos": False}, "output": 5})
    assert told.request_sampling.ignore_eos is False
    assert PromptFactory(told).conversation(rng, 0).max_tokens == 5
    with pytest.raises(ValidationError, match="a trace replays single requests"):
        WorkloadSpec.model_validate({"name": "m", "prompt": prompt, "session": {"turns": 2}})


# ---------------------------------------------------------------- the schedule

TIMES = [10.0, 10.5, 11.0, 12.0, 14.0, 15.0]


def replay(**fields: Any) -> ReplayCommand:
    return ReplayCommand.model_validate({"workload": "w", **fields})


def test_the_schedule_keeps_the_traces_gaps_from_the_first_row() -> None:
    assert list(schedule(TIMES, replay())) == [(0.0, 0), (0.5, 1), (1.0, 2), (2.0, 3), (4.0, 4), (5.0, 5)]
    assert list(schedule(TIMES, replay(speed=2))) == [(0.0, 0), (0.25, 1), (0.5, 2), (1.0, 3), (2.0, 4), (2.5, 5)]
    assert wall_seconds(TIMES, replay(speed=2)) == 2.5
    assert window_rows(TIMES, replay()) == 6


def test_a_window_counts_from_its_start_and_a_loop_repeats_it() -> None:
    # trace seconds [0.5, 2.5) after the first row: rows at 10.5, 11.0 and 12.0
    one = list(schedule(TIMES, replay(start=0.5, duration=2.0)))
    assert one == [(0.0, 1), (0.5, 2), (1.5, 3)]
    looped = list(schedule(TIMES, replay(start=0.5, duration=2.0, loop=3, speed=2)))
    assert [row for _, row in looped] == [1, 2, 3] * 3
    assert [t for t, _ in looped] == pytest.approx([0.0, 0.25, 0.75, 1.0, 1.25, 1.75, 2.0, 2.25, 2.75])
    assert wall_seconds(TIMES, replay(start=0.5, duration=2.0, loop=3, speed=2)) == 2.75
    assert window_rows(TIMES, replay(start=0.5, duration=2.0, loop=3)) == 9
    assert window_rows(TIMES, replay(start=6.0)) == 0 and list(schedule(TIMES, replay(start=6.0))) == []
    with pytest.raises(ValidationError, match="loop needs duration"):
        replay(loop=2)


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_the_workers_shares_make_the_whole_schedule(workers: int) -> None:
    command = replay(duration=6.0, loop=2)
    whole = list(schedule(TIMES, command))
    shares = [list(schedule(TIMES, command, share, workers)) for share in range(workers)]
    assert sorted(x for share in shares for x in share) == sorted(whole)
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # even shares
    assert all(share == sorted(share) for share in shares)  # each in time order


def test_a_replay_phase_command_needs_open_mode() -> None:
    command = PhaseCommand(name="r", mode="open", replay=replay())  # no rate: the trace sets the pace
    assert command.replay is not None and command.worker_rate == 0.0
    with pytest.raises(ValidationError, match="a replay is an open phase"):
        PhaseCommand(name="r", mode="closed", users=1, replay=replay())


# ---------------------------------------------------------------- scenario and plan

TRACE_SCENARIO = f"""\
name: replay
target: {{kind: simulator}}
workloads:
  - name: moon
    prompt: {{kind: trace, path: {SAMPLES / "mooncake-sample.jsonl"}, format: mooncake}}
  - {{name: chat, prompt: {{kind: synthetic, tokens: 64}}, output: 16}}
workers: 3
"""


def test_a_replay_step_lasts_its_schedule_and_names_its_workload() -> None:
    phases = "phases:\n  - {name: r, kind: replay, speed: 2}\n  - {name: w, kind: replay, start: 2s, duration: 3s, loop: 2}\n"
    sc, problems, _ = parse(TRACE_SCENARIO + phases, "s.yaml", ROOT)
    assert not problems, [str(p) for p in problems]
    assert sc is not None
    first, second = build_plan(sc).steps
    assert isinstance(first, LocustStep) and isinstance(second, LocustStep)
    times = [r.time for r in read_trace(sc.workloads[0].prompt)]  # type: ignore[arg-type]
    assert first.command.replay is not None and first.command.replay.workload == "moon"
    assert first.duration == pytest.approx((times[-1] - times[0]) / 2 + REPLAY_TAIL)
    assert first.users == 3 and first.command.mode == "open" and first.command.worker_count == 3
    assert second.command.replay is not None
    assert second.command.replay.loop == 2 and second.command.replay.start == 2.0


@pytest.mark.parametrize(
    ("phases", "words"),
    [
        ("  - {name: r, kind: replay, workload: chat}\n", "workload 'chat' needs prompt kind trace"),
        ("  - {name: r, kind: replay, workload: nope}\n", "workload 'nope' is not in workloads"),
        ("  - {name: r, kind: replay, loop: 2}\n", "loop needs duration"),
        ("  - {name: r, kind: replay, start: 1h}\n", "the window holds no row"),
        ("  - {name: r, kind: replay, speed: 0}\n", "greater than 0"),
    ],
)
def test_replay_phases_that_cannot_run_are_refused(phases: str, words: str) -> None:
    _, problems, _ = parse(TRACE_SCENARIO + "phases:\n" + phases, "s.yaml", ROOT)
    assert len(problems) == 1 and words in str(problems[0]), [str(p) for p in problems]


def test_a_replay_needs_one_trace_workload_or_its_name() -> None:
    two = TRACE_SCENARIO.replace(
        "  - {name: chat",
        f"  - {{name: moon2, prompt: {{kind: trace, path: {SAMPLES / 'azure-sample.csv'}, format: azure}}}}\n"
        "  - {name: chat",
    )
    _, problems, _ = parse(two + "phases:\n  - {name: r, kind: replay}\n", "s.yaml", ROOT)
    assert len(problems) == 1 and "found moon, moon2" in str(problems[0])
    sc, problems, _ = parse(two + "phases:\n  - {name: r, kind: replay, workload: moon2}\n", "s.yaml", ROOT)
    assert not problems and sc is not None


def test_validate_reports_a_malformed_trace_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = (SAMPLES / "mooncake-sample.jsonl").read_text().splitlines()
    lines[11] = lines[11].replace('"output_length"', '"output_len"')
    trace = tmp_path / "broken.jsonl"
    trace.write_text("\n".join(lines) + "\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: r\ntarget: {kind: simulator}\nworkloads:\n"
        "  - name: m\n    prompt: {kind: trace, path: broken.jsonl, format: mooncake}\n"
        "phases:\n  - {name: r, kind: replay}\n"
    )
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(scenario)])
    _, err = capsys.readouterr()
    assert exited.value.code == 2
    assert err.strip().splitlines() == [
        f"finishline: {scenario}:5: workloads[0].prompt.path: {trace} line 12: output_length: missing; "
        "fix or remove the line"
    ]
