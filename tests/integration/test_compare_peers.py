"""A finishline run of the load the peers measured (the simulator's ``gpu-8b`` preset, 16 streams,
300 requests of 64 prompt and 128 output tokens; ``tests/data/peer-results/README.md``) compared
with GuideLLM's own file of it: TPOT, recomputed from GuideLLM's per-request timings in
finishline's definition, is "same" within the default threshold; the comparison says it is
across tools and that an imported TTFT carries the other tool's client overhead."""

from __future__ import annotations

import json
from pathlib import Path

from coordinator.compare.result import Comparison, Verdict
from tests.factories import synthetic_workload, write_scenario
from tests.fixtures.cli import finishline, the_run_dir
from tests.paths import DATA

GUIDELLM = DATA / "peer-results" / "guidellm-concurrent16-gpu8b.json"


def test_a_run_of_the_same_load_matches_guidellm_s_tpot_and_flags_its_ttft(tmp_path: Path) -> None:
    scenario = {
        "name": "same-load",
        "target": {"kind": "simulator", "preset": "gpu-8b", "trace": False},
        "workloads": [synthetic_workload("synthetic", 64, 128)],
        "phases": [{"name": "steady", "users": 16, "requests": 300}],
        "workers": 1,
        "output_dir": str(tmp_path / "runs"),
    }
    done = finishline("run", str(write_scenario(tmp_path, scenario)), "--no-live", timeout=300)
    assert done.returncode == 0, done.stderr
    compared = finishline("compare", str(the_run_dir(tmp_path)), str(GUIDELLM), "--format", "json")
    assert compared.returncode in (0, 1), compared.stderr
    result = Comparison.model_validate(json.loads(compared.stdout))

    (step,) = [s for s in result.steps if s.workload == "all"]
    assert step.matched_by == "load" and "concurrency 16" in step.match  # "steady" against GuideLLM's "concurrent-16"
    tpot = {m.stat: m for m in step.metrics if m.metric == "tpot"}
    assert tpot["p50"].verdict is Verdict.SAME, tpot["p50"]
    assert tpot["p50"].relative is not None and abs(tpot["p50"].relative) < 0.10  # the default threshold
    assert "tpot (records)" in result.comparable  # recomputed from per-request data on both sides
    ttft = [m for m in step.metrics if m.metric == "ttft"]
    assert ttft, "TTFT is compared"
    assert any("across tools" in w for w in result.warnings)
    assert any("client overhead" in w for w in result.warnings), result.warnings
    worse = sorted({m.metric for m in step.metrics if m.verdict is Verdict.WORSE})
    print(f"TPOT p50 {tpot['p50'].relative:+.1%}; worse against GuideLLM: {worse}")
