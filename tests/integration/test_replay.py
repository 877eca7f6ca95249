"""``finishline run`` of a replay phase against the real simulator, two workers, the samples shipped in
``examples/traces``; ground truth from the simulator's trace (``simulator_trace.jsonl``).

- Mooncake at speed 1: each request sent within 5 ms of the run's origin plus its trace
  timestamp (median within 1 ms), with its trace lengths; requests that share hash ids are
  served from the simulator's prefix cache, exactly as many tokens as their shared blocks hold;
- Azure and BurstGPT (one model, one log type) at speed 4: the same times, a quarter of the
  trace's gaps, and no cache hit (their rows share no text);
- a client that falls behind the trace (one request in flight at a time) makes the run invalid,
  by the self-check's dispatch-delay rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from coordinator.results.collector import read_records
from coordinator.results.outcome import EXIT_CODES, Outcome
from coordinator.results.summary import Summary, read_summary
from loadgen.records import RequestRecord
from loadgen.spec import TracePrompt
from loadgen.traces import TraceRow, read_trace
from tests.factories import write_scenario
from tests.fixtures.cli import start_finishline, the_run_dir
from tests.paths import ROOT

SAMPLES = ROOT / "examples" / "traces"
CHAT_OVERHEAD = 4 + 3  # the simulator's chat template: one message, one reply header
BLOCK = 512


@dataclass
class Replayed:
    rows: tuple[TraceRow, ...]  # the trace's rows, in time order
    records: list[RequestRecord]  # the replay's, each the row at the same index
    truth: list[dict[str, Any]]  # the simulator's line for each record
    summary: Summary
    expected: np.ndarray  # when each row was due: the phase's origin + its trace time / speed


def replay(
    tmp: Path,
    prompt: dict[str, Any],
    speed: float,
    workload: dict[str, Any] | None = None,
    exit_code: int = 0,
    **phase: Any,
) -> Replayed:
    """Run a replay of ``prompt``'s trace; the rows and the replay's records, matched one to one.

    The simulator writes four tokens a chunk: a quarter of the events to write and parse, the same
    ground truth, less CPU taken from the workers on a machine shared with other work."""
    scenario = {
        "name": "replay",
        "target": {"kind": "simulator", "preset": "gpu-8b", "settings": {"tokens_per_chunk": 4}},
        "workloads": [{"name": "trace", "prompt": prompt, **(workload or {})}],
        "phases": [{"name": "replay", "kind": "replay", "speed": speed, **phase}],
        "workers": 2,
        "output_dir": str(tmp / "runs"),
        "drain_timeout": 20,
    }
    proc = start_finishline("run", str(write_scenario(tmp, scenario)), "--no-live")
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == exit_code, err
    run_dir = the_run_dir(tmp)
    summary = read_summary(run_dir / "summary.json")
    # rows of the same time (BurstGPT's whole seconds) are told apart by their prompt's length
    rows = tuple(sorted(read_trace(TracePrompt.model_validate(prompt)), key=lambda r: (r.time, max(1, r.input_tokens))))
    truth = {t["id"]: t for t in map(orjson.loads, (run_dir / "simulator_trace.jsonl").read_bytes().splitlines()) if t}
    records = [r for r in read_records(run_dir / "records.jsonl.gz") if r.phase == "replay"]
    records.sort(key=lambda r: r.scheduled)
    # records due at one time (each worker converts the origin to its clock: microseconds apart)
    # in the rows' order, by their prompt's length
    groups: list[list[RequestRecord]] = []
    for r in records:
        if groups and r.scheduled - groups[-1][0].scheduled < 0.001:
            groups[-1].append(r)
        else:
            groups.append([r])
    records = [r for g in groups for r in sorted(g, key=lambda r: truth[r.final.response_id or ""]["prompt_tokens"])]
    window = next(w for w in summary.run.phases if w.name == "replay")
    expected = np.array([window.start + (row.time - rows[0].time) / speed for row in rows])
    return Replayed(rows, records, [truth[r.final.response_id or ""] for r in records], summary, expected)


def check_schedule(run: Replayed) -> dict[str, float]:
    """Every row sent once, on time, with its lengths, by both workers; the figures measured (ms)."""
    assert len(run.records) == len(run.rows), (len(run.records), len(run.rows))
    assert all(r.ok for r in run.records), {r.outcome for r in run.records}
    assert len({r.worker for r in run.records}) == 2  # each worker sent its share
    for row, record, truth in zip(run.rows, run.records, run.truth, strict=True):
        assert truth["prompt_tokens"] == max(1, row.input_tokens) + CHAT_OVERHEAD
        assert record.final.output_tokens == truth["output_tokens"] == max(1, row.output_tokens)  # ignore_eos
    scheduled = np.array([r.scheduled for r in run.records])
    assert np.abs(scheduled - run.expected).max() < 1e-4  # one origin for both workers
    sent = (np.array([r.attempts[0].sent for r in run.records]) - run.expected) * 1000
    arrival = (np.array([t["arrival"] for t in run.truth]) - run.expected) * 1000
    figures = {
        "sent_median_ms": float(np.median(sent)),
        "sent_max_ms": float(sent.max()),
        "arrival_median_ms": float(np.median(arrival)),
        "arrival_max_ms": float(arrival.max()),
    }
    print(figures)
    assert sent.min() >= 0, figures  # never early
    # Median within 1 ms, at least 85% within 5 ms, none beyond the self-check's 50 ms. On a shared
    # CI machine the OS stops a worker now and then for up to ~25 ms (measured on CI: 3 sends of 34
    # delayed by two such hiccups 5 s apart, 22.5 ms at most), which delays every row due in it; a
    # replay that waited for replies, or slept in whole timer ticks, would miss the median.
    assert figures["sent_median_ms"] <= 1.0, figures
    on_time = float(np.mean(sent <= 5.0))
    assert on_time >= 0.85, (figures, on_time)
    assert figures["sent_max_ms"] <= 50.0, figures
    assert run.summary.valid, run.summary.invalid_reasons
    delay = run.summary.phases["replay"].latency_ms.dispatch_delay  # the schedule lag, reported
    assert delay.p50 is not None and delay.p50 <= 1.0, delay
    return figures


def shared_tokens(rows: tuple[TraceRow, ...], i: int) -> int:
    """Prompt tokens of row ``i`` in full blocks whose hash ids, from the first, an earlier row had too."""
    best = 0
    for earlier in rows[:i]:
        k = 0
        full = min(earlier.input_tokens, rows[i].input_tokens) // BLOCK
        while (
            k < min(full, len(earlier.hash_ids), len(rows[i].hash_ids)) and earlier.hash_ids[k] == rows[i].hash_ids[k]
        ):
            k += 1
        best = max(best, k)
    return best * BLOCK


def test_a_mooncake_trace_at_speed_1_is_sent_on_time_and_hits_the_prefix_cache(tmp_path: Path) -> None:
    prompt = {"kind": "trace", "path": str(SAMPLES / "mooncake-sample.jsonl"), "format": "mooncake"}
    run = replay(tmp_path, prompt, speed=1)
    check_schedule(run)
    # The sample's sessions grow block by block, turns 1.5 s apart at least (their prefill is done
    # when the next one comes): each request is served as many cached tokens as the full blocks
    # it shares with an earlier one hold, whichever worker sent that one.
    expected = [shared_tokens(run.rows, i) for i in range(len(run.rows))]
    cached = [t["cached_tokens"] for t in run.truth]
    assert cached == expected
    assert [r.final.cached_tokens for r in run.records] == cached  # as the usage reported it
    hits = sum(1 for c in cached if c)
    print({"requests": len(cached), "cache_hits": hits, "cached_tokens": sum(cached)})
    assert hits >= 25
    # rows are dealt to the workers in turn: a hit on blocks the other worker's request sent
    # first shows both make the same text of a hash id
    crossed = [
        i
        for i, row in enumerate(run.rows)
        if cached[i]
        and any(
            earlier.hash_ids[:1] == row.hash_ids[:1] and run.records[j].worker != run.records[i].worker
            for j, earlier in enumerate(run.rows[:i])
        )
    ]
    assert len(crossed) >= 5


def test_an_azure_trace_at_speed_4_keeps_a_quarter_of_its_gaps(tmp_path: Path) -> None:
    prompt = {"kind": "trace", "path": str(SAMPLES / "azure-sample.csv"), "format": "azure"}
    run = replay(tmp_path, prompt, speed=4)
    check_schedule(run)
    sent = np.array([r.attempts[0].sent for r in run.records])
    gaps = np.diff([row.time for row in run.rows]) / 4
    assert abs(float(np.median(np.diff(sent) - gaps))) < 0.001  # the trace's gaps, a quarter, as sent
    assert all(t["cached_tokens"] == 0 for t in run.truth)  # rows without hash ids share no text


def test_a_burstgpt_trace_kept_to_one_model_and_log_type_at_speed_4(tmp_path: Path) -> None:
    prompt = {
        "kind": "trace",
        "path": str(SAMPLES / "burstgpt-sample.csv"),
        "format": "burstgpt",
        "model": "ChatGPT",
        "log_type": "Conversation log",
    }
    run = replay(tmp_path, prompt, speed=4)
    assert len(run.rows) == 27  # of the sample's 80
    check_schedule(run)
    assert all(t["cached_tokens"] == 0 for t in run.truth)


def test_a_client_that_falls_behind_the_trace_makes_the_run_invalid(tmp_path: Path) -> None:
    """One request in flight at a time, 60 requests in 2 s (of ~0.1 s each: 4 tokens out, the
    workload's ``output`` overrides the trace's): the rest wait in the client queue."""
    prompt = {"kind": "trace", "path": str(SAMPLES / "azure-sample.csv"), "format": "azure"}
    invalid = int(EXIT_CODES[Outcome.INVALID])
    run = replay(tmp_path, prompt, speed=20, workload={"output": 4}, exit_code=invalid, max_concurrency=1)
    assert len(run.records) == len(run.rows)  # late, but every row was sent
    assert not run.summary.valid
    assert any("dispatch delay p99" in reason for reason in run.summary.invalid_reasons), run.summary.invalid_reasons
    delays = [r.attempts[0].sent - r.scheduled for r in run.records]
    assert max(delays) > 0.5
