"""A matrix against the real llama.cpp container: ``LLAMA_PARALLEL`` 1 and 4 at 4 concurrent users,
each variant a whole run in a fresh container. With four slots llama.cpp decodes the four
streams in one batch; with one it serves them in turn, so output throughput is higher with 4,
and the matrix's report says so. Checked against the server itself: its own ``llamacpp:``
counters and the slots its ``/props`` reported (``target.json``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from coordinator.results.collector import read_records
from coordinator.results.matrix import MATRIX_FILE, read_matrix
from coordinator.results.outcome import Outcome
from coordinator.results.summary import read_summary
from tests.factories import write_scenario
from tests.fixtures.cli import finishline, the_run_dir
from tests.integration.test_docker_llamacpp import images_built, llamacpp_counters

pytestmark = pytest.mark.docker
__all__ = ["images_built"]  # the module's fixture, shared

USERS = 4
REQUESTS = 24


def test_llama_parallel_1_against_4_at_4_users(docker_clean, images_built: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = {
        "name": "llamacpp-parallel",
        "target": {
            "kind": "docker",
            "image": "finishline/llamacpp:latest",
            # one thread on one core: batching's gain without threads that wait on each other at
            # every step, which a machine shared with other work makes slow and erratic
            "cpus": 1.0,
            "memory": "1g",
            "environment": {"LLAMA_THREADS": "1"},
            "readiness_timeout_s": 120,
        },
        "workloads": [{"name": "chat", "prompt": {"kind": "synthetic", "tokens": 48}, "output": 24}],
        # the steady phase ends at its last request's end: four slots finish their replies
        # together, so a phase cut by time would count a whole batch or none of it at its end
        "phases": [
            {"name": "warm", "kind": "warmup", "users": USERS, "requests": USERS, "duration": 60},
            {"name": "steady", "users": USERS, "requests": REQUESTS, "duration": 300},
        ],
        "workers": 1,
        "drain_timeout": 120,  # one slot serves the last four in turn; a busy machine makes that slow
        "output_dir": str(tmp_path / "runs"),
        "matrix": {"target.environment.LLAMA_PARALLEL": ["1", "4"]},
    }
    path = write_scenario(tmp_path, data)
    proc = finishline("run", str(path), "--no-live", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    matrix_dir = the_run_dir(tmp_path)
    result = read_matrix(matrix_dir / MATRIX_FILE)
    assert result.outcome.outcome is Outcome.OK
    by = {v.values["target.environment.LLAMA_PARALLEL"]: v for v in result.variants}
    assert list(by) == ["1", "4"]

    containers = set()
    for parallel, variant in by.items():
        run_dir = matrix_dir / variant.run_dir
        summary = read_summary(run_dir / "summary.json")  # a complete run directory of its own
        assert summary.all.errors == 0 and summary.all.count > 0
        (container,) = json.loads((run_dir / "container.json").read_text())  # a fresh container each
        containers.add(container["id"])
        # the server started with the variant's slots, as it says itself
        assert re.findall(r"n_slots\s*=\s*(\d+)", (run_dir / "container.log").read_text()) == [parallel]
        # every token the client counted, the server generated (pre-flight, warm-up and steady)
        records = list(read_records(run_dir / "records.jsonl.gz"))
        assert all(r.ok for r in records)
        counters = llamacpp_counters((run_dir / "server_metrics.prom").read_text())
        assert counters["llamacpp:tokens_predicted_total"] == sum(r.final.output_tokens or 0 for r in records)
    assert len(containers) == 2

    one, four = by["1"].phases["steady"], by["4"].phases["steady"]
    assert one.requests >= REQUESTS and four.requests >= REQUESTS
    assert one.output_tokens_per_s is not None and four.output_tokens_per_s is not None
    # four slots serve more tokens per second than one, by a margin that depends on what else
    # the machine runs (1.19x in one CI run); the two effects below are larger
    assert four.output_tokens_per_s > one.output_tokens_per_s
    assert one.ttft_p50_ms is not None and four.ttft_p50_ms is not None
    assert one.tpot_p50_ms is not None and four.tpot_p50_ms is not None
    # with one slot, three of four streams wait their turn before their first token ...
    assert one.ttft_p50_ms > 1.4 * four.ttft_p50_ms
    # ... and with four, every step computes four tokens, so each stream's tokens come slower
    assert four.tpot_p50_ms > 1.5 * one.tpot_p50_ms
    report = (matrix_dir / "report.html").read_text()
    for variant in ("LLAMA_PARALLEL=1", "LLAMA_PARALLEL=4"):
        assert f"href='variants/{variant}/report.html'" in report
    assert f"{four.output_tokens_per_s:,.1f}" in report and f"{one.output_tokens_per_s:,.1f}" in report
    print(
        f"\nout tok/s at {USERS} users: LLAMA_PARALLEL=1 {one.output_tokens_per_s:.1f}, "
        f"LLAMA_PARALLEL=4 {four.output_tokens_per_s:.1f}; TTFT p50 {one.ttft_p50_ms:.0f} / {four.ttft_p50_ms:.0f} ms"
    )
