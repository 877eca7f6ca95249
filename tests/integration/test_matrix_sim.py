"""A matrix against the real simulator: ``max_num_seqs`` 8 and 32 at 32 users, each variant a whole
run with a fresh simulator of its own; and Ctrl-C during the first variant, which keeps what it
measured and starts no other.

The simulator's own trace is the ground truth that each variant ran with its setting: no more
requests decode at once than ``max_num_seqs``.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import orjson
import yaml

from coordinator.results.matrix import MATRIX_FILE, read_matrix
from coordinator.results.outcome import Outcome
from coordinator.results.summary import read_summary
from tests.factories import simulator_scenario, write_scenario
from tests.fixtures.cli import start_finishline, the_run_dir
from tests.fixtures.waiting import wait_for

USERS = 32
# a slow step (30 ms) keeps the client far from saturation at 32 streams on a shared 2-core machine
TARGET = {"kind": "simulator", "preset": "gpu-8b", "settings": {"step_overhead_s": 0.03}}
WORKLOAD = [{"name": "chat", "prompt": {"kind": "synthetic", "tokens": 64}, "output": 32}]


def _scenario(tmp_path: Path, phases: list[dict[str, Any]]) -> Path:
    data = simulator_scenario(
        tmp_path,
        phases,
        target=TARGET,
        workloads=WORKLOAD,
        drain_timeout=5,
        matrix={"target.settings.max_num_seqs": [8, 32]},
    )
    return write_scenario(tmp_path, data)


def _most_decoding_at_once(trace: list[dict[str, Any]]) -> int:
    """From the simulator's trace: the most requests between their first token and their end at once."""
    events = sorted(
        [(t["token_times"][0], 1) for t in trace if t["token_times"]]
        + [(t["finish"], -1) for t in trace if t["token_times"]]
    )
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def test_max_num_seqs_8_against_32_side_by_side(tmp_path: Path) -> None:
    path = _scenario(
        tmp_path,
        [
            {"name": "warm", "kind": "warmup", "users": USERS, "duration": "2s"},
            {"name": "steady", "users": USERS, "duration": "8s"},
        ],
    )
    proc = start_finishline("run", str(path), "--no-live")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    matrix_dir = the_run_dir(tmp_path)
    result = read_matrix(matrix_dir / MATRIX_FILE)
    assert [v.name for v in result.variants] == ["max_num_seqs=8", "max_num_seqs=32"]
    assert result.outcome.outcome is Outcome.OK
    by = {v.values["target.settings.max_num_seqs"]: v for v in result.variants}

    for seqs, variant in by.items():
        run_dir = matrix_dir / variant.run_dir
        assert run_dir == matrix_dir / "variants" / f"max_num_seqs={seqs}"
        for name in ("summary.json", "report.html", "records.jsonl.gz", "scenario.yaml", "simulator_trace.jsonl"):
            assert (run_dir / name).exists(), (run_dir, name)
        summary = read_summary(run_dir / "summary.json")  # a complete run directory of its own
        assert summary.run.id == variant.run_id and summary.outcome is not None
        assert summary.all.errors == 0 and summary.valid
        # its figures in matrix.json are its summary's
        assert variant.phases["steady"].output_tokens_per_s == summary.phases["steady"].output_tokens_per_s
        # the variant's scenario is the scenario with its value set, and its simulator ran with it
        ran = yaml.safe_load((run_dir / "scenario.yaml").read_text())
        assert ran["target"]["settings"] == {"step_overhead_s": 0.03, "max_num_seqs": seqs} and "matrix" not in ran
        trace = [orjson.loads(line) for line in (run_dir / "simulator_trace.jsonl").read_bytes().splitlines()]
        assert _most_decoding_at_once(trace) <= seqs

    eight, thirty_two = by[8].phases["steady"], by[32].phases["steady"]
    assert eight.output_tokens_per_s is not None and thirty_two.output_tokens_per_s is not None
    # 32 users on 8 slots: 8 decode at a time, the others wait; on 32 slots all decode in each step
    assert thirty_two.output_tokens_per_s > 2 * eight.output_tokens_per_s
    assert eight.ttft_p50_ms is not None and thirty_two.ttft_p50_ms is not None
    assert eight.ttft_p50_ms > 5 * thirty_two.ttft_p50_ms  # the queue is in TTFT

    # the console shows the variants side by side; the report links each variant's own
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line == "phase steady")
    assert [lines[head + 2].split()[0], lines[head + 3].split()[0]] == ["max_num_seqs=8", "max_num_seqs=32"]
    report = (matrix_dir / "report.html").read_text()
    assert "href='variants/max_num_seqs=8/report.html'" in report and "<svg" in report
    assert f"{thirty_two.output_tokens_per_s:,.1f}" in report
    print(
        f"\nout tok/s: 8 -> {eight.output_tokens_per_s:.1f}, 32 -> {thirty_two.output_tokens_per_s:.1f}; "
        f"TTFT p50 ms: 8 -> {eight.ttft_p50_ms:.0f}, 32 -> {thirty_two.ttft_p50_ms:.0f}"
    )


def test_ctrl_c_stops_after_the_current_variant_keeping_it(tmp_path: Path) -> None:
    path = _scenario(tmp_path, [{"name": "long", "users": 4, "duration": "120s"}])
    proc = start_finishline("run", str(path), "--no-live")
    try:
        first = tmp_path / "runs"

        def sending() -> bool:
            assert proc.poll() is None, proc.communicate()
            traces = list(first.glob("*/variants/*/simulator_trace.jsonl"))
            return bool(traces) and traces[0].stat().st_size > 5_000

        wait_for(sending, timeout=90, what="the first variant to send traffic", interval=0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]
    matrix_dir = the_run_dir(tmp_path)
    result = read_matrix(matrix_dir / MATRIX_FILE)
    first_variant, second = result.variants
    assert first_variant.outcome is not None and first_variant.outcome.outcome is Outcome.INTERRUPTED
    assert first_variant.phases["long"].requests > 0  # what it measured is kept
    summary = read_summary(matrix_dir / first_variant.run_dir / "summary.json")
    assert summary.partial and summary.all.count == first_variant.phases["long"].requests
    assert second.outcome is None and not (matrix_dir / second.run_dir).exists()  # never started
    assert "1 variant not run (max_num_seqs=32)" in " ".join(result.outcome.reasons)
    assert "INTERRUPTED" in out.splitlines()[-1]
