"""The Docker target lifecycle against the real engine, with the small base image.

A stand-in server (python's http.server in finishline/base) is enough to check the
lifecycle itself: readiness, stats, the log, verdicts for OOM / exit / timeout, and that
no container outlives its test — also when the owning process is interrupted or killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from coordinator.docker.engine import RUN_LABEL, leftover_containers, reap_orphans
from coordinator.docker.images import BASE_IMAGE, ensure_image
from coordinator.docker.lifecycle import DockerTarget, TargetFailed
from coordinator.docker.spec import DockerTargetSpec, HealthSpec
from loadgen.errors import UserError
from tests.fixtures.waiting import wait_for
from tests.paths import ROOT

pytestmark = pytest.mark.docker

HTTP_SERVER = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]


@pytest.fixture(scope="module")
def base_image(docker_engine):  # type: ignore[no-untyped-def]
    ensure_image(docker_engine, BASE_IMAGE)
    return BASE_IMAGE


def spec(**kw: object) -> DockerTargetSpec:
    fields: dict[str, object] = {
        "image": BASE_IMAGE,
        "command": HTTP_SERVER,
        "health": HealthSpec(endpoint="/"),
        "readiness_timeout_s": 20,
        "stop_timeout_s": 1,
        "stats_interval_s": 0.5,
    }
    return DockerTargetSpec.model_validate(fields | kw)


def test_ready_stats_log_and_removal(docker_clean, base_image, tmp_path: Path) -> None:
    run_id = f"t-{uuid.uuid4().hex[:8]}"
    with DockerTarget(spec(cpus=0.5, memory="256m"), run_id, tmp_path, docker_clean) as target:
        timings = target.start_container()
        steps = timings.steps()
        assert all(v is not None and v >= 0 for v in steps.values()), steps
        assert steps["to_ready"] > 0
        container = docker_clean.containers.get(target.container.id)
        host = container.attrs["HostConfig"]
        assert host["NetworkMode"] == "host"
        assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 256 * 1024 * 1024
        assert container.labels[RUN_LABEL] == run_id
        stats = tmp_path / "container_stats.jsonl"
        wait_for(  # a few stats samples of the first container, written as they come
            lambda: stats.exists() and len(stats.read_text().splitlines()) >= 2,
            timeout=15,
            what="two stats samples",
        )
        second = target.start_container()  # a fresh container replaces the first
        assert second.number == 2
    assert leftover_containers(docker_clean, run_id) == []
    summary = json.loads((tmp_path / "container.json").read_text())
    assert [c["number"] for c in summary] == [1, 2]
    assert summary[0]["stats"]["samples"] >= 1 and summary[0]["stats"]["memory_peak"] > 0
    assert summary[0]["exit_code"] is not None and not summary[0]["oom_killed"]
    log = (tmp_path / "container.log").read_text()
    assert "===== container 1" in log and "===== container 2" in log
    assert '"GET / HTTP/1.1" 200' in log  # the health polls, as the server logged them
    samples = [json.loads(line) for line in (tmp_path / "container_stats.jsonl").read_text().splitlines()]
    assert samples and all(s["memory_limit"] == 256 * 1024 * 1024 for s in samples)


def test_memory_limit_below_need_is_an_oom_verdict(docker_clean, base_image, tmp_path: Path) -> None:
    hog = ["python3", "-c", "x = bytearray(256 * 1024 * 1024); import time; time.sleep(60)"]
    run_id = f"t-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    with (
        DockerTarget(spec(command=hog, memory="64m"), run_id, tmp_path, docker_clean) as target,
        pytest.raises(TargetFailed) as failed,
    ):
        target.start_container()
    assert failed.value.verdict == "oom"
    assert "target.memory" in str(failed.value)
    assert time.monotonic() - started < 15  # a verdict, not a hang until the readiness timeout
    summary = json.loads((tmp_path / "container.json").read_text())
    assert summary[0]["oom_killed"] is True and summary[0]["verdict"] == "oom"


def test_exit_and_timeout_verdicts(docker_clean, base_image, tmp_path: Path) -> None:
    exits = spec(command=["sh", "-c", "echo broken >&2; exit 3"])
    with DockerTarget(exits, "t-exit", tmp_path, docker_clean) as t, pytest.raises(TargetFailed) as failed:
        t.start_container()
    assert failed.value.verdict == "exited" and "code 3" in str(failed.value)
    assert "broken" in (tmp_path / "container.log").read_text()
    never_ready = spec(command=["sleep", "30"], readiness_timeout_s=1)
    with DockerTarget(never_ready, "t-timeout", tmp_path, docker_clean) as t, pytest.raises(TargetFailed) as failed:
        t.start_container()
    assert failed.value.verdict == "timeout"


OWNER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from coordinator.docker.lifecycle import DockerTarget
    from coordinator.docker.spec import DockerTargetSpec
    spec = DockerTargetSpec.model_validate({json_spec})
    with DockerTarget(spec, sys.argv[1], Path(sys.argv[2])) as target:
        target.start_container()
        print("ready", flush=True)
        time.sleep(120)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_owner_interrupted_or_killed_leaves_no_container(docker_clean, base_image, tmp_path: Path, sig: int) -> None:
    run_id = f"t-kill-{uuid.uuid4().hex[:8]}"
    code = OWNER.replace("{json_spec}", repr(spec().model_dump(mode="json")))
    # SIGTERM is turned into an exception the way the coordinator does, so `with` cleans up.
    # SIGINT raises KeyboardInterrupt as in a terminal, even when this test runs from a background
    # job, whose children inherit SIGINT ignored (Python then leaves it so).
    prelude = (
        "import signal, sys\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(143))\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", prelude + code, run_id, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        stderr=subprocess.DEVNULL,  # the KeyboardInterrupt traceback of the SIGINT case
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert len(leftover_containers(docker_clean, run_id)) == 1
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGKILL:
        # Nothing can clean up after SIGKILL: the next target reaps the orphan (dead owner pid).
        assert len(leftover_containers(docker_clean, run_id)) == 1
        assert reap_orphans(docker_clean) >= 1
    assert leftover_containers(docker_clean, run_id) == []


def test_image_built_from_the_scenarios_context(docker_clean, base_image, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    tag = f"finishline-test/custom:{uuid.uuid4().hex[:8]}"
    (context / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo hello > /srv/index.html\nWORKDIR /srv\n")
    custom = spec(image=tag, build={"context": str(context)})
    try:
        with DockerTarget(custom, f"t-build-{uuid.uuid4().hex[:8]}", tmp_path, docker_clean) as target:
            assert target.prepare() is not None  # built (seconds), because it was missing
            assert target.prepare() is None  # now present
            target.start_container()
            assert target.health_ok()
        (context / "Dockerfile").write_text(f"FROM {base_image}\nRUN exit 7\n")
        broken = spec(image=tag + "-broken", build={"context": str(context)})
        with (
            DockerTarget(broken, "t-build-broken", tmp_path, docker_clean) as target,
            pytest.raises(UserError, match=r"target\.build: building .* failed"),
        ):
            target.prepare()
        assert docker_clean.containers.list(all=True, filters={"ancestor": base_image}) == []  # no build leftovers
    finally:
        docker_clean.images.remove(tag, force=True)


def test_validate_refuses_an_image_that_is_not_here_and_has_no_build(docker_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        textwrap.dedent(
            """\
            name: absent
            target: {kind: docker, image: "finishline-test/absent:1"}
            workloads: [{name: w, prompt: {kind: synthetic, tokens: 8}, output: 8}]
            phases: [{name: s, users: 1, duration: 1s}]
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "validate", str(scenario)], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"finishline: {scenario}:2: target.image: 'finishline-test/absent:1' is not on this machine and the target "
        "has no `build`; add build: {context: DIR}, or docker build/load the image first (runs never pull)"
    ]
    # the same image with a build context is fine: the run builds it
    scenario.write_text(
        scenario.read_text().replace('"finishline-test/absent:1"}', '"finishline-test/absent:1", build: {context: .}}')
    )
    done = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "validate", str(scenario)], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
