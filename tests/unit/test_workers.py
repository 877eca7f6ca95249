"""Where workers come from and how they join: the scenario's ``workers``, the join messages, the
Redis URL a worker uses, ``finishline worker``'s address, the roster and its losses, ``workers.json``."""

from __future__ import annotations

import dataclasses
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coordinator import registry
from coordinator.cli import main
from coordinator.plan.steps import build_plan
from coordinator.results.selfcheck import WorkerHealth
from coordinator.results.workers import WorkerEntry, WorkerSource, read_workers, workers_table, write_workers
from coordinator.run.cluster import LocustCluster
from coordinator.run.launchers import MasterAddress
from coordinator.run.remote import parse_master
from coordinator.scenario.loader import parse
from coordinator.scenario.workers import DEFAULT_MASTER_PORT, WorkersSpec
from coordinator.services.ports import connect_address, url_host
from coordinator.services.redis_server import RedisServer, redact
from loadgen.config import CONTAINER_ENV, WorkerHello, version_mismatch, worker_redis_url
from loadgen.errors import UserError
from loadgen.telemetry import worker_id
from tests.factories import worker_hello
from tests.paths import ROOT

BASE = """\
name: demo
target: {kind: simulator}
workloads:
  - {name: chat, prompt: {kind: synthetic, tokens: 64}, output: 16}
phases:
  - {name: open, rate: 4, duration: 2s}
"""


def _problems(workers: str) -> list[str]:
    _, problems, _ = parse(BASE + f"workers: {workers}\n", "s.yaml", ROOT)
    return [str(p) for p in problems]


def test_a_count_is_local_workers_and_the_long_form_counts_every_source() -> None:
    count, _, _ = parse(BASE + "workers: 3\n", "s.yaml", ROOT)
    assert count is not None and count.worker_sources == WorkersSpec(local=3) and count.worker_count == 3
    long, _, _ = parse(BASE + "workers: {local: 1, remote: 4, wait_s: 30}\n", "s.yaml", ROOT)
    assert long is not None and long.worker_count == 5
    sources = long.worker_sources
    assert sources.remote == 4 and sources.wait_s == 30 and sources.outside
    # the plan divides an open phase's load by every worker, wherever it runs
    (step,) = build_plan(long).locust_steps()
    assert step.command.worker_count == 5 and step.users == 5


def test_the_master_port_defaults_to_locusts_with_remote_workers_and_nothing_listens_beyond_loopback() -> None:
    assert WorkersSpec(remote=1).master_port == DEFAULT_MASTER_PORT
    assert WorkersSpec(remote=1, port=6000).master_port == 6000
    assert WorkersSpec(local=2).master_port is None  # a free port
    assert WorkersSpec(local=2, listen="10.0.0.1").bind_host == "127.0.0.1"  # no one outside to listen for
    assert WorkersSpec(remote=1).bind_host == "127.0.0.1"
    assert WorkersSpec(remote=1, listen="10.0.0.1").bind_host == "10.0.0.1"


@pytest.mark.parametrize(
    ("workers", "expected"),
    [
        ("many", "workers: Input should be a valid integer"),
        ("0", "workers: Input should be greater than or equal to 1"),
        ("{local: 0}", "workers: at least one worker: set local, remote or containers"),
        ("{remote: 1, listen: nowhere}", "workers.listen: 'nowhere' is not an IP address"),
        ("{local: 1, cpus: 1}", "workers: cpus and memory are for containers"),
        ("{local: 1, colour: red}", "workers.colour: unknown key"),
    ],
)
def test_bad_workers_are_one_line_naming_the_field(workers: str, expected: str) -> None:
    problems = _problems(workers)
    assert len(problems) == 1 and expected in problems[0], problems


def test_containers_without_a_launcher_say_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # a build without the docker feature: the features that launch no workers only
    without = tuple(dataclasses.replace(f, worker_launchers={}) for f in registry.features())
    monkeypatch.setattr(registry, "features", lambda: without)
    with pytest.raises(UserError, match=r"^workers\.containers: workers of this kind are not available in this build$"):
        WorkersSpec(containers=2)
    with pytest.raises(UserError, match=r"workers\.gpus: workers of this kind are not available"):
        registry.worker_launcher("gpus")


def test_a_worker_of_another_version_is_refused_with_both_versions() -> None:
    assert version_mismatch("0.2.0", "0.2.0") is None
    assert version_mismatch("0.2.0", "0.1.0") == "it runs finishline 0.2.0, this worker 0.1.0; install the same version"


def test_a_hello_names_the_worker_and_its_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONTAINER_ENV, raising=False)
    host = socket.gethostname()
    assert worker_id() == f"{host}:{os.getpid()}"
    hello = WorkerHello.here(worker_id())
    assert (hello.name, hello.host, hello.pid, hello.container) == (f"{host}:{os.getpid()}", host, os.getpid(), None)
    # in a container: named by it (containers on one host share its name, and often their pid)
    monkeypatch.setenv(CONTAINER_ENV, "finishline-r1-worker-3")
    assert worker_id() == f"finishline-r1-worker-3:{os.getpid()}"
    hello = WorkerHello.here(worker_id())
    assert (hello.host, hello.container) == (host, "finishline-r1-worker-3")
    assert WorkerHello.model_validate(worker_hello().model_dump()) == worker_hello()


@pytest.mark.parametrize(
    ("configured", "master", "override", "expected"),
    [
        ("redis://:pw@127.0.0.1:6379/0", "10.0.0.1", None, "redis://:pw@10.0.0.1:6379/0"),
        ("redis://0.0.0.0:6379/0", "10.0.0.1", None, "redis://10.0.0.1:6379/0"),
        ("redis://localhost:6379/2", "fd00::1", None, "redis://[fd00::1]:6379/2"),
        ("redis://10.0.0.1:6379/0", "10.0.0.9", None, "redis://10.0.0.1:6379/0"),  # a real address stays
        ("redis://127.0.0.1:6379/0", "127.0.0.1", None, "redis://127.0.0.1:6379/0"),
        ("unix:///run/redis.sock", "10.0.0.1", None, "unix:///run/redis.sock"),
        ("redis://127.0.0.1:6379/0", "10.0.0.1", "redis://r.example:6380/0", "redis://r.example:6380/0"),
    ],
)
def test_the_redis_url_a_worker_uses(configured: str, master: str, override: str | None, expected: str) -> None:
    assert worker_redis_url(configured, master, override) == expected


def test_a_password_is_in_the_url_for_workers_and_never_in_what_is_shown() -> None:
    server = RedisServer(port=6390, bind="0.0.0.0", password="hunter2")
    assert server.url == "redis://:hunter2@127.0.0.1:6390/0"  # this machine reaches it on loopback
    assert redact(server.url) == "redis://:***@127.0.0.1:6390/0"
    assert redact("redis://127.0.0.1:1/0") == "redis://127.0.0.1:1/0"
    assert RedisServer(port=6391).url == "redis://127.0.0.1:6391/0"
    assert connect_address("::") == "::1" and url_host("fd00::1") == "[fd00::1]" and url_host("h") == "h"


@pytest.mark.parametrize(
    ("given", "address"),
    [
        ("10.0.0.1:5557", MasterAddress("10.0.0.1", 5557)),
        ("master.lab:6000", MasterAddress("master.lab", 6000)),
        ("[fd00::1]:5557", MasterAddress("fd00::1", 5557)),
    ],
)
def test_master_addresses(given: str, address: MasterAddress) -> None:
    assert parse_master(given) == address


@pytest.mark.parametrize(
    "given", ["10.0.0.1", "10.0.0.1:", ":5557", "10.0.0.1:0", "10.0.0.1:70000", "a b:1", "fd00::1:5"]
)
def test_a_bad_master_address_is_one_line_and_exit_2(given: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["worker", "--master", given])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"finishline: --master: expected HOST:PORT, e.g. 10.0.0.1:5557, not {given!r}"]


def test_worker_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["worker", "--help"])
    assert exit_info.value.code == 0
    assert "finishline worker --master 10.0.0.1:5557" in capsys.readouterr().out


def test_a_worker_gone_two_ways_is_one_loss_with_its_exit_code(tmp_path: Path) -> None:
    cluster = LocustCluster(tmp_path, "{}", WorkersSpec(local=1, remote=1), env={})
    cluster._notices.put({"event": "worker_joined", "client_id": "c1", "t": 1.0, **worker_hello("a:1").model_dump()})
    cluster._notices.put({"event": "worker_joined", "client_id": "c2", "t": 1.0, **worker_hello("b:2").model_dump()})
    cluster._notices.put({"event": "worker_lost", "name": "a:1", "client_id": "c1", "t": 5.0})  # the master saw it go
    cluster._take_notices()
    cluster._lose("a:1", -9, 5.2, "exited with code -9")  # and its process exited
    (loss,) = cluster.lost
    assert (loss.worker, loss.exit_code, loss.lost_at) == ("a:1", -9, 5.0)
    seen = {w.name: w for w in cluster.workers_seen()}
    assert seen["a:1"].lost_at is not None and seen["b:2"].lost_at is None
    assert seen["a:1"].source is WorkerSource.REMOTE  # not one of the local launcher's processes


def test_workers_json_round_trips_and_the_table_shows_where_each_ran_and_its_health(tmp_path: Path) -> None:
    joined = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    workers = [
        WorkerEntry(
            name="a:1", host="a", pid=1, version="0.1.0", source=WorkerSource.LOCAL, joined_at=joined, records=120
        ),
        WorkerEntry(
            name="b:1",
            host="b",
            pid=1,
            container="fl-worker-1",
            version="0.1.0",
            source=WorkerSource.CONTAINER,
            joined_at=joined,
            lost_at=datetime(2026, 12, 1, 10, 0, 30, tzinfo=UTC),
        ),
    ]
    write_workers(tmp_path, workers)
    assert read_workers(tmp_path) == workers
    assert read_workers(tmp_path / "nowhere") == []
    health = {"a:1": WorkerHealth(samples=9, cpu_p90=41.5, cpu_max=60.0, loop_lag_p99_ms=3.25, loop_lag_max_ms=7.0)}
    table = workers_table(workers, health)
    assert "a pid 1" in table and "b (container fl-worker-1)" in table
    assert "<td>120</td>" in table and "<td>41.5</td>" in table and "<td>3.2</td>" in table
    assert "lost 10:00:30 UTC" in table
    assert workers_table([], health) == ""
