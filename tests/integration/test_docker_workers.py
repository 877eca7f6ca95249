"""Locust workers in containers (``coordinator.docker.workers``) against a real Locust master.

The launcher's own part is checked with a plain Locust worker in ``finishline/worker``
(``python -m locust --worker -f -``: the locustfile comes from the master): the containers
join the master over host networking, run under their limits, carry the run's labels and the
given environment, a ``docker kill`` is reported with its exit code, the rest exit by
themselves when the master quits, and every container is gone after ``stop`` with its log kept.
Then whole runs with ``workers: {containers: 2}`` (the image's own ``finishline worker``): every
request in the simulator's trace is a record, ``workers.json`` names each container, and a
worker container killed mid-run is a lost worker, counted as a killed local one is.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from locust.env import Environment
from locust.runners import MasterRunner

from coordinator.docker.engine import PID_LABEL, ROLE_LABEL, RUN_LABEL, leftover_containers, reap_abandoned
from coordinator.docker.feature import FEATURE
from coordinator.docker.workers import CONTAINER_ENV, ROLE, ContainerWorkers, container_workers
from coordinator.registry import worker_launcher
from coordinator.results.collector import read_records
from coordinator.results.outcome import ExitCode
from coordinator.results.summary import read_summary
from coordinator.run.launchers import MasterAddress
from coordinator.services.ports import free_port
from loadgen.errors import UserError
from tests import factories
from tests.fixtures.cli import finishline, start_finishline, the_run_dir
from tests.fixtures.waiting import wait_for
from tests.paths import ROOT

pytestmark = pytest.mark.docker

HOST = "127.0.0.1"
PLAIN_LOCUST_WORKER = {
    "entrypoint": ["python", "-m", "locust"],
    "command": ["--worker", "-f", "-", "--master-host", "{host}", "--master-port", "{port}"],
}
IDLE_LOCUSTFILE = """
from locust import User, constant, task


class Idle(User):
    wait_time = constant(1)

    @task
    def idle(self) -> None:
        pass
"""


def _master(tmp_path: Path) -> tuple[MasterRunner, MasterAddress]:
    """A Locust master in this process on a loopback port, serving its locustfile to workers."""
    locustfile = tmp_path / "idle_locustfile.py"
    locustfile.write_text(textwrap.dedent(IDLE_LOCUSTFILE))
    env = Environment(user_classes=[], parsed_locustfiles=[str(locustfile)])
    port = free_port()
    return env.create_master_runner(master_bind_host=HOST, master_bind_port=port), MasterAddress(HOST, port)


def _run_id() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def test_worker_containers_join_a_master_are_limited_reported_and_removed(
    docker_clean, worker_image: str, tmp_path: Path
) -> None:
    run_id = _run_id()
    master, address = _master(tmp_path)
    spec = factories.ContainerWorkers(containers=2, cpus=0.5, memory="256m")
    workers = ContainerWorkers(spec, run_id, docker_clean, image=worker_image, **PLAIN_LOCUST_WORKER)
    env = {"FINISHLINE_REDIS_URL": "redis://127.0.0.1:6379/0", "SIM_API_KEY": "not-sent-over-the-wire"}
    try:
        workers.start(2, address, env, tmp_path)

        def joined() -> bool:
            assert workers.exited() == [], workers.exited()  # a worker that died is the answer, at once
            return master.worker_count == 2

        wait_for(joined, timeout=60, what=lambda: f"2 workers to join; {master.worker_count} did", interval=0.2)
        names = [w.name for w in workers.workers]
        for number, name in enumerate(names, 1):
            attrs = docker_clean.api.inspect_container(name)
            host = attrs["HostConfig"]
            assert host["NetworkMode"] == "host"
            assert host["NanoCpus"] == 500_000_000
            assert host["Memory"] == host["MemorySwap"] == 256 * 1024 * 1024  # no swap
            labels = attrs["Config"]["Labels"]
            assert labels[RUN_LABEL] == run_id and labels[ROLE_LABEL] == ROLE and labels[PID_LABEL].isdigit()
            assert labels["finishline.worker"] == str(number)
            environment = set(attrs["Config"]["Env"])
            assert {f"{CONTAINER_ENV}={name}", "SIM_API_KEY=not-sent-over-the-wire"} <= environment
            assert attrs["Config"]["Cmd"][-2:] == ["--master-port", str(address.port)]

        docker_clean.containers.get(names[0]).kill()
        wait_for(
            lambda: workers.exited() == [(names[0], 137)],
            timeout=20,
            what=lambda: f"the killed container among the exited: {workers.exited()}",
        )
        master.quit()  # the other worker is told to quit and exits by itself
        workers.stop(timeout=30)
    finally:
        master.quit()
        workers.stop(timeout=0)
    assert sorted(workers.exited()) == [(names[0], 137), (names[1], 0)]
    assert leftover_containers(docker_clean, run_id) == []
    first = (tmp_path / "logs" / "worker-container-1.log").read_text()
    second = (tmp_path / "logs" / "worker-container-2.log").read_text()
    assert "exit code 137" in first.splitlines()[0] and "exit code 0" in second.splitlines()[0]
    assert "Got quit message from master" in second, second  # it exited by itself, not killed by stop


def test_stop_kills_workers_that_do_not_exit(docker_clean, worker_image: str, tmp_path: Path) -> None:
    run_id = _run_id()
    workers = ContainerWorkers(
        factories.ContainerWorkers(containers=1),
        run_id,
        docker_clean,
        image=worker_image,
        entrypoint=["python", "-c", "import sys, time; print('up', sys.argv[1:], flush=True); time.sleep(600)"],
    )
    workers.start(1, MasterAddress(HOST, free_port()), {}, tmp_path)
    wait_for(
        lambda: "up" in docker_clean.containers.get(workers.workers[0].name).logs().decode(),
        timeout=30,
        what="the container to print",
    )
    workers.stop(timeout=0.5)
    assert workers.exited() == [(workers.workers[0].name, 137)]
    assert leftover_containers(docker_clean, run_id) == []
    log = (tmp_path / "logs" / "worker-container-1.log").read_text()
    assert f"up ['--master', '{HOST}:" in log  # the command the image's entrypoint is given


def test_worker_containers_of_a_killed_run_are_cleaned_up(docker_clean, worker_image: str, tmp_path: Path) -> None:
    run_id = _run_id()
    # A coordinator that starts a worker container and dies without stopping it.
    script = f"""
import os
from coordinator.docker.workers import ContainerWorkers
from coordinator.run.launchers import MasterAddress
from tests.factories import ContainerWorkers as Spec
workers = ContainerWorkers(Spec(containers=1), {run_id!r}, image={worker_image!r}, entrypoint=["sleep", "600"])
workers.start(1, MasterAddress("127.0.0.1", 1), {{}}, __import__("pathlib").Path({str(tmp_path)!r}))
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, timeout=60)
    assert len(leftover_containers(docker_clean, run_id)) == 1
    assert FEATURE.cleanups and reap_abandoned() >= 1  # the docker feature's cleanup (finishline clean)
    assert leftover_containers(docker_clean, run_id) == []


def test_the_launcher_is_registered_and_a_missing_image_is_one_line(docker_clean, worker_image: str) -> None:
    factory = worker_launcher("containers").load()
    assert factory is container_workers
    assert isinstance(factory(factories.ContainerWorkers(), _run_id()), ContainerWorkers)
    missing = ContainerWorkers(factories.ContainerWorkers(), _run_id(), docker_clean, image="finishline/absent:latest")
    with pytest.raises(UserError, match=r"^workers\.containers: image finishline/absent:latest is not built; run"):
        missing.start(1, MasterAddress(HOST, 1), {}, Path("."))
    with pytest.raises(UserError, match=r"^workers\.memory: "):
        ContainerWorkers(factories.ContainerWorkers(memory="lots"), _run_id(), docker_clean)


def test_the_image_runs_finishline_worker(docker_engine, worker_image: str) -> None:
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", worker_image, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--master" in result.stdout


def _container_run(tmp_path: Path, duration: str) -> Path:
    data = factories.simulator_scenario(
        tmp_path, [{"name": "steady", "users": 4, "think_time": 0.05, "duration": duration}]
    )
    data["workers"] = {"containers": 2, "cpus": 1, "memory": "512m"}
    return factories.write_scenario(tmp_path, data)


def _trace_lines(tmp_path: Path) -> int:
    traces = list((tmp_path / "runs").glob("*/simulator_trace.jsonl")) if (tmp_path / "runs").exists() else []
    return traces[0].read_bytes().count(b"\n") if traces else 0


def test_a_run_with_two_worker_containers_records_every_request(
    docker_clean, worker_image: str, tmp_path: Path
) -> None:
    proc = finishline("run", str(_container_run(tmp_path, "8s")), "--no-live", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = the_run_dir(tmp_path)
    records = list(read_records(run_dir / "records.jsonl.gz"))
    trace = (run_dir / "simulator_trace.jsonl").read_bytes().splitlines()
    assert len(records) == len(trace) > 20 and all(r.ok for r in records)
    placed = json.loads((run_dir / "workers.json").read_text())
    assert [w["source"] for w in placed] == ["container", "container"]
    assert all(w["container"] and w["container"].startswith("finishline-") for w in placed)
    assert {r.worker for r in records if r.phase == "steady"} == {w["name"] for w in placed}
    assert sorted(p.name for p in (run_dir / "logs").glob("worker-container-*.log")) == [
        "worker-container-1.log",
        "worker-container-2.log",
    ]
    assert not leftover_containers(docker_clean)  # every worker container removed


def test_a_worker_container_killed_mid_run_is_a_lost_worker(docker_clean, worker_image: str, tmp_path: Path) -> None:
    proc = start_finishline("run", str(_container_run(tmp_path, "20s")), "--no-live")
    try:
        wait_for(lambda: _trace_lines(tmp_path) > 40, timeout=180, what="both worker containers sending", interval=0.2)
        victim, *_ = docker_clean.containers.list(filters={"label": f"{ROLE_LABEL}={ROLE}"})
        victim.kill()
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == ExitCode.PARTIAL, err[-3000:]
    summary = read_summary(the_run_dir(tmp_path) / "summary.json")
    assert summary.losses is not None
    (lost,) = summary.losses.workers_lost
    placed = {w["name"]: w for w in json.loads((the_run_dir(tmp_path) / "workers.json").read_text())}
    assert placed[lost.worker]["container"] == victim.name
    assert lost.exit_code == 137  # SIGKILL, as docker reports it
    assert victim.name in err and "lost" in err
    assert not leftover_containers(docker_clean)
