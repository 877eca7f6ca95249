"""The real model: llama.cpp serving Gemma 3 270M in a CPU-limited container, cold and warm.

`finishline images build`, then `finishline run` of a scenario with a Docker target: three
cold starts, then four concurrent streaming chat users. Checked against the server itself:
its usage and its own ``llamacpp:`` counters. Also: a run interrupted in the middle of its
cold starts leaves no container behind.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from coordinator.docker.engine import PID_LABEL, RUN_LABEL
from coordinator.results.status import RunStatus
from coordinator.results.summary import read_summary
from tests.factories import write_scenario
from tests.fixtures.cli import finishline, start_finishline, the_run_dir
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.docker

CPUS = 1.5
WARM_REQUESTS = 16


def scenario(tmp_path: Path, starts: int, warm: dict[str, Any], memory: str = "1g") -> Path:
    data = {
        "name": "llamacpp-cold-warm",
        "target": {
            "kind": "docker",
            "image": "finishline/llamacpp:latest",
            "cpus": CPUS,
            "memory": memory,
            "environment": {"LLAMA_PARALLEL": "4", "LLAMA_THREADS": "2"},
            "readiness_timeout_s": 120,
        },
        # llama-server closes the connection after each streamed reply while announcing keep-alive:
        # the client resends on a fresh connection, so no request here may fail
        "workloads": [{"name": "chat", "prompt": {"kind": "synthetic", "tokens": 48}, "output": 24}],
        "phases": [
            {"name": "cold_start", "kind": "cold_start", "starts": starts, "warm_requests": 3, "max_tokens": 16},
            {"name": "warm", **warm},
        ],
        "workers": 1,
        "output_dir": str(tmp_path / "runs"),
    }
    return write_scenario(tmp_path, data)


@pytest.fixture(scope="module")
def images_built(docker_engine) -> str:  # type: ignore[no-untyped-def]
    """`finishline images build` (cached: only what is missing is built)."""
    started = time.monotonic()
    proc = finishline("images", "build", "--quiet", timeout=1800)
    assert proc.returncode == 0, proc.stderr
    for name in ("base", "simulator", "llamacpp"):
        assert f"finishline/{name}:" in proc.stdout
    return f"{proc.stdout.strip()} ({time.monotonic() - started:.1f} s)"


def llamacpp_counters(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("llamacpp:")
    }


def test_cold_starts_then_warm_concurrent_chat(docker_clean, images_built: str, tmp_path: Path) -> None:
    path = scenario(tmp_path, starts=3, warm={"users": 4, "requests": WARM_REQUESTS, "duration": 120})
    proc = finishline("run", str(path), "--no-live")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = the_run_dir(tmp_path)

    cold = json.loads((run_dir / "cold_start.json").read_text())
    assert cold["verdict"] is None and len(cold["starts"]) == 3
    for start in cold["starts"]:
        assert start["steps"]["to_ready"] > 0 and start["steps"]["ready"] > 0
        assert start["steps"]["first_token"] > 0
    console = proc.stdout + proc.stderr  # the console follows the starts, with the time left
    for number in (1, 2, 3):
        ready = cold["starts"][number - 1]["steps"]["to_ready"]
        assert f"cold start {number} of 3: ready after {ready:.1f} s" in console, console[-3000:]
    assert re.search(r"cold start 1 of 3: .*; about \S+ left", console), console[-3000:]
    with gzip.open(run_dir / "records.jsonl.gz") as fh:
        records = [json.loads(line) for line in fh]
    by = lambda phase, workload=None: [  # noqa: E731
        r for r in records if r["phase"] == phase and (workload is None or r["workload"] == workload)
    ]
    first, warm_same = by("cold_start", "first_request"), by("cold_start", "warm_request")
    assert len(first) == 3 and len(warm_same) == 9
    ttft = lambda r: r["attempts"][-1]["first_token"] - r["attempts"][-1]["sent"]  # noqa: E731
    assert statistics.median(map(ttft, first)) > statistics.median(map(ttft, warm_same))
    assert cold["cold_penalty"] > 0
    # what was refused while the model loaded is recorded, as the server said it
    for probe in by("cold_start", "loading_probe"):
        final = probe["attempts"][-1]
        assert final["status"] == 503 and "Loading model" in final["error_detail"]

    warm = by("warm")
    assert len(warm) >= WARM_REQUESTS and all(r["attempts"][-1]["error"] is None for r in warm)
    for rec in warm + first + warm_same:
        final = rec["attempts"][-1]
        assert not final["tokens_estimated"] and final["output_tokens"] > 0  # counts are the server's usage

    # The last container served the last start's requests and the warm phase: its own counter
    # of generated tokens equals the usage the client recorded, request by request summed.
    last = str(len(cold["starts"]))
    served = [r for r in records if r["attempts"][-1]["error"] is None and (r["phase"] == "warm" or r["step"] == last)]
    counters = llamacpp_counters((run_dir / "server_metrics.prom").read_text())
    assert counters["llamacpp:tokens_predicted_total"] == sum(r["attempts"][-1]["output_tokens"] for r in served)
    assert counters["llamacpp:prompt_tokens_total"] > 0

    containers = json.loads((run_dir / "container.json").read_text())
    assert len(containers) == 4  # the run's first container, then three cold starts
    assert all(c["limits"]["nano_cpus"] == int(CPUS * 1e9) for c in containers)
    assert containers[-1]["stats"]["memory_peak"] > 250 * 2**20  # the weights live in the container
    assert "===== container 4" in (run_dir / "container.log").read_text()
    report = (run_dir / "report.html").read_text()
    assert "Cold penalty" in report and "Requests refused while the model was loading" in report
    print(f"\nimages: {images_built}")
    for name, values in cold["steps"].items():
        print(f"{name:>15}: " + ", ".join(f"{v * 1000:.0f}" for v in values) + " ms")
    print(
        f"cold TTFT {[round(ttft(r) * 1000) for r in first]} ms, warm TTFT {[round(ttft(r) * 1000) for r in warm_same]} ms"
    )


def test_interrupted_run_leaves_no_container(docker_clean, images_built: str, tmp_path: Path) -> None:
    path = scenario(tmp_path, starts=6, warm={"users": 2, "duration": 60})
    proc = start_finishline("run", str(path), "--no-live", stdout=subprocess.DEVNULL)
    try:
        ours = {"label": [RUN_LABEL, f"{PID_LABEL}={proc.pid}"]}
        seen: set[str] = set()

        def second_cold_start() -> bool:  # the run's first container, then two cold starts: mid-phase
            assert proc.poll() is None, "the run ended before its second cold start"
            # the low-level list: containers.list() inspects each, and one removed meanwhile is a 404
            seen.update(c["Id"] for c in docker_clean.api.containers(all=True, filters=ours))
            return len(seen) >= 3

        wait_for(second_cold_start, timeout=120, what="the run's second cold start", interval=0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert docker_clean.containers.list(all=True, filters=ours) == [], err[-2000:]
    run_dir = the_run_dir(tmp_path)
    assert read_summary(run_dir / "summary.json").status == RunStatus.PARTIAL
    assert (run_dir / "container.log").exists()
    assert os.path.exists(run_dir / "records.jsonl.gz")


def test_memory_limit_below_the_model_is_an_oom_verdict(docker_clean, images_built: str, tmp_path: Path) -> None:
    path = scenario(tmp_path, starts=3, warm={"users": 1, "duration": 30}, memory="200m")  # the weights are 253 MB
    started = time.monotonic()
    proc = finishline("run", str(path), "--no-live", timeout=120)
    assert time.monotonic() - started < 60  # a verdict, not a wait for readiness_timeout_s (120 s)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert "OOM killer at memory limit 200m; raise target.memory" in last and "Traceback" not in proc.stderr
    run_dir = the_run_dir(tmp_path)
    assert "Verdict: OOM" in (run_dir / "report.html").read_text()
    (container,) = json.loads((run_dir / "container.json").read_text())
    assert container["oom_killed"] and container["verdict"] == "oom"
