"""The cold-start phase against the simulator image (a model that 'loads' for a set time).

The simulator answers 503 ``Loading model`` for ``startup_seconds``, like llama-server, so
the phase's steps, its refused-while-loading records and the warm comparison are checked
in seconds, without the real model.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from coordinator.docker.coldstart import ColdStartRunner
from coordinator.docker.engine import leftover_containers
from coordinator.docker.images import SIMULATOR_IMAGE, ensure_image
from coordinator.docker.lifecycle import DockerTarget, TargetFailed
from coordinator.docker.report import render_container_section
from coordinator.docker.spec import ColdStartPhase, DockerTargetSpec
from coordinator.results.coldstart import STEPS
from loadgen.records import RequestRecord

pytestmark = pytest.mark.docker

STARTUP_S = 0.8


@pytest.fixture(scope="module")
def simulator_image(docker_engine):  # type: ignore[no-untyped-def]
    ensure_image(docker_engine, SIMULATOR_IMAGE)
    return SIMULATOR_IMAGE


def test_cold_starts_record_every_step_and_every_refusal(docker_clean, simulator_image, tmp_path: Path) -> None:
    script = (
        f"printf 'startup_seconds: {STARTUP_S}\\n' > /tmp/sim.yaml && "
        "exec python3 -m targets.simulator --host 127.0.0.1 --port {port} --preset gpu-8b --config /tmp/sim.yaml"
    )
    spec = DockerTargetSpec(
        name="sim",
        image=simulator_image,
        entrypoint=["sh", "-c"],
        command=[script],
        cpus=1.0,
        memory="256m",
        readiness_timeout_s=30,
        stop_timeout_s=1,
    )
    phase = ColdStartPhase(starts=2, warm_requests=2, probe_interval_s=0.2, max_tokens=8)
    records: list[RequestRecord] = []
    run_id = f"t-cold-{uuid.uuid4().hex[:8]}"
    with DockerTarget(spec, run_id, tmp_path, docker_clean) as target:
        result = ColdStartRunner(phase, target, run_id, records.append, model="sim").run()
        assert target.container is not None  # the last start stays up for the warm phases
    assert leftover_containers(docker_clean, run_id) == []

    assert result.verdict is None and len(result.starts) == 2
    for start in result.starts:
        assert all(start.steps[name] is not None and start.steps[name] >= 0 for name in STEPS), start.steps
        # the server refuses for STARTUP_S after it began listening; ready cannot come sooner
        assert start.steps["port_open"] + start.steps["ready"] >= STARTUP_S * 0.9
        assert start.refused_while_loading >= 1
        assert any("Loading model" in key for key in start.refusals)
        assert start.cold_ttft is not None and len(start.warm_ttft) == 2

    by_kind: dict[str, list[RequestRecord]] = {}
    for rec in records:
        assert rec.phase == "cold_start" and rec.run_id == run_id and rec.target == "sim"
        by_kind.setdefault(rec.workload, []).append(rec)
    probes = [r for r in by_kind["loading_probe"] if not r.ok]
    assert len(probes) == sum(s.refused_while_loading for s in result.starts)
    assert all(r.final.status == 503 and r.outcome == "http_5xx" for r in probes)
    assert len(by_kind["first_request"]) == 2 and all(r.ok for r in by_kind["first_request"])
    assert len(by_kind["warm_request"]) == 4 and all(r.ok for r in by_kind["warm_request"])
    assert all(r.final.output_tokens == 8 for r in by_kind["warm_request"])

    saved = json.loads((tmp_path / "cold_start.json").read_text())
    assert len(saved["steps"]["to_ready"]) == 2 and len(saved["warm_ttft"]) == 4
    assert saved["refused_while_loading"] == len(probes)
    containers = json.loads((tmp_path / "container.json").read_text())
    assert [c["number"] for c in containers] == [1, 2]
    section = render_container_section(tmp_path)
    assert "Cold penalty" in section and "<svg" in section and "Verdict" not in section
    assert f"Requests refused while the model was loading: <b>{len(probes)}</b>" in section


def test_oom_start_ends_the_phase_with_a_verdict(docker_clean, simulator_image, tmp_path: Path) -> None:
    spec = DockerTargetSpec(name="sim", image=simulator_image, memory="8m", readiness_timeout_s=60, stop_timeout_s=1)
    records: list[RequestRecord] = []
    with (
        DockerTarget(spec, f"t-oom-{uuid.uuid4().hex[:8]}", tmp_path, docker_clean) as target,
        pytest.raises(TargetFailed) as failed,  # the run ends (partial) with the verdict
    ):
        ColdStartRunner(ColdStartPhase(starts=3), target, target.run_id, records.append).run()
    assert failed.value.verdict == "oom" and "target.memory" in str(failed.value)
    saved = json.loads((tmp_path / "cold_start.json").read_text())
    assert saved["verdict"] == "oom" and len(saved["starts"]) == 1
    assert "Verdict: OOM" in render_container_section(tmp_path)
