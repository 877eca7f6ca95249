"""An automatic sweep against the real simulator with 8 sequence slots finds the knee at 8, and
its capacity under the SLO agrees with a bisection done here, one fixed-load run per level."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coordinator.results.summary import read_summary
from coordinator.results.sweep import RESULT_FILE, SweepResult
from tests.factories import synthetic_workload, write_scenario
from tests.fixtures.cli import finishline

# 8 slots: up to 8 users every request runs at once; beyond, requests queue and their TTFT grows.
SLOTS = 8
SLO = {"ttft_ms": 200, "percentile": 95}  # the capacity keeps 95% of requests under 200 ms


def _scenario(folder: Path, phase: dict[str, Any]) -> Path:
    (folder / "sim.yaml").write_text(f"max_num_seqs: {SLOTS}\n")
    return write_scenario(
        folder,
        {
            "name": "sweep",
            "target": {"kind": "simulator", "preset": "gpu-8b", "config": "sim.yaml"},
            "workloads": [synthetic_workload("w", 64, 64)],
            "phases": [phase],
            "slo": SLO,
            "workers": 1,
            "output_dir": str(folder / "runs"),
        },
    )


def _run(folder: Path, phase: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    done = finishline("run", str(_scenario(folder, phase)), "--no-live", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = (folder / "runs").iterdir()
    return run_dir


def _attains_slo(folder: Path, users: int) -> bool:
    """One fixed-load run of ``users`` closed-loop users: does it keep the SLO attainment?"""
    run_dir = _run(folder / f"u{users}", {"name": "steady", "users": users, "duration": "5s"})
    share = read_summary(run_dir / "summary.json").all.goodput.share
    assert share is not None
    return share >= SLO["percentile"] / 100


def test_an_automatic_sweep_finds_the_knee_at_the_slots_and_the_capacity_a_bisection_finds(tmp_path: Path) -> None:
    run_dir = _run(tmp_path / "sweep", {"kind": "sweep", "name": "sweep", "users": "auto", "step_duration": "5s"})
    result = SweepResult.model_validate_json((run_dir / RESULT_FILE).read_bytes())
    levels = [lv.level for lv in result.levels]  # in the order they ran
    assert levels[:5] == [1, 2, 4, 8, 16], levels  # doubling until past the knee and the SLO
    assert result.knee is not None and SLOTS - 1 <= result.knee <= SLOTS + 1, result
    assert result.capacity is not None

    # Bisect step by step between a level that keeps the SLO and one that misses it: the sweep's
    # own first level kept it and its level 16 missed it (each a fixed load of its own already)
    low, high = 1, 16
    attainment = {lv.level: lv.slo_attainment for lv in result.levels}
    assert (attainment[low] or 0) >= SLO["percentile"] / 100 > (attainment[high] or 0), attainment
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if _attains_slo(tmp_path, mid) else (low, mid)
    assert abs(result.capacity - low) <= 0.1 * low, (result.capacity, low)

    # Each level is a phase of the summary, and the report shows the sweep.
    summary = read_summary(run_dir / "summary.json")
    assert {lv.phase for lv in result.levels} <= set(summary.phases)
    assert "id='sweep'" in (run_dir / "report.html").read_text()
