"""Real Locust worker processes (``locust -f loadgen/locustfile.py --worker``) driven by a master
in this process, shipping records and samples to a real redis-server: phases, the users each
phase leaves running, the drain; and the sink on its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gevent
import orjson
import pytest
import redis
from locust.env import Environment
from locust.event import Events
from locust.runners import MasterRunner

from coordinator.services.ports import free_port
from coordinator.services.redis_server import RedisServer
from loadgen.config import (
    CONFIG_MESSAGE,
    CONFIGURED_MESSAGE,
    DRAIN_MESSAGE,
    HELLO_MESSAGE,
    PHASE_MESSAGE,
    PhaseCommand,
)
from loadgen.records import RequestRecord
from loadgen.samples import WorkerSample
from loadgen.stream.keys import stream_keys
from loadgen.stream.samples import SampleReader
from loadgen.stream.sink import RecordSink
from loadgen.users import USER_CLASSES, OpenLoopDispatcher, PhaseUsersDispatcher, classes_for
from tests.factories import record
from tests.fixtures.simulator import run_simulator
from tests.fixtures.waiting import wait_for
from tests.paths import ROOT


def _records(run_id: str, n: int) -> list[RequestRecord]:
    return [record(run_id=run_id, record_id=f"r{i}", tokens=50, t0=1.0 + i) for i in range(n)]


def test_sink_batches_and_loses_nothing_at_close(redis_server: RedisServer) -> None:
    sink = RecordSink(redis_server.url, "sinktest", batch_size=100, flush_interval=0.05).start()
    records = _records("sinktest", 1234)
    for i, rec in enumerate(records):
        sink.add(rec)
        if i % 300 == 0:
            gevent.sleep(0)  # let the sink's greenlet flush now and then, as a busy worker does
    sink.close()  # the last partial batch is flushed here
    client = redis.Redis.from_url(redis_server.url)
    entries = client.xrange(stream_keys("sinktest").records)
    assert len(entries) == 1234 and sink.sent == 1234
    ids = [fields[b"id"].decode() for _, fields in entries]
    assert ids == [f"r{i}" for i in range(1234)]  # in order, once each
    back = RequestRecord.from_json(entries[5][1][b"r"])
    assert back == records[5]


def test_sink_keeps_records_while_redis_is_down() -> None:
    with RedisServer() as server:
        port = server.port
        sink = RecordSink(server.url, "down", batch_size=10, flush_interval=0.05).start()
    for rec in _records("down", 25):  # redis is gone: these stay queued
        sink.add(rec)
    wait_for(lambda: sink.failures >= 1, timeout=10, what="the sink to fail a flush")
    assert sink.pending == 25
    with RedisServer(port=port) as server:
        sink.close(timeout=10)
        assert redis.Redis.from_url(server.url).xlen(stream_keys("down").records) == 25


def _worker_config(tmp_path: Path, redis_url: str, base_url: str, run_id: str, workloads: list[dict]) -> Path:
    config = {
        "run_id": run_id,
        "redis_url": redis_url,
        "seed": 1,
        "target": {"base_url": base_url + "/v1", "model": "sim", "name": "sim"},
        "workloads": workloads,
        "record": {"flush_interval": 0.05, "sample_interval": 0.5},
    }
    path = tmp_path / f"{run_id}.json"
    path.write_bytes(orjson.dumps(config))
    return path


@contextmanager
def _cluster(config: Path, workers: int, stop_timeout: float = 0.0) -> Iterator[MasterRunner]:
    """A master in this process (as ``coordinator.run.master`` builds it, answering each worker's
    hello with the configuration) and ``workers`` real ``locust --worker`` processes loading
    loadgen/locustfile.py; yields once every one has applied it."""
    port = free_port()
    env = Environment(
        user_classes=list(USER_CLASSES),
        events=Events(),
        dispatcher_class=PhaseUsersDispatcher,
        stop_timeout=stop_timeout,
    )
    master = env.create_master_runner(master_bind_host="127.0.0.1", master_bind_port=port)
    payload = orjson.loads(config.read_bytes())
    configured: set[str] = set()
    master.register_message(
        HELLO_MESSAGE, lambda msg, **_: master.send_message(CONFIG_MESSAGE, payload, client_id=msg.node_id)
    )
    master.register_message(CONFIGURED_MESSAGE, lambda msg, **_: configured.add(msg.node_id))
    logs = [config.with_name(f"{config.stem}-worker-{i + 1}.log") for i in range(workers)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(ROOT / "loadgen" / "locustfile.py"),
                "--worker",
                "--master-host",
                "127.0.0.1",
                "--master-port",
                str(port),
            ],
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            stdout=log.open("wb"),  # a file: a pipe nobody reads would block a worker that logs much
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        for log in logs
    ]
    try:

        def connected() -> bool:
            for proc, log in zip(procs, logs, strict=True):
                assert proc.poll() is None, log.read_text()
            return master.worker_count >= workers and len(configured) >= workers

        wait_for(connected, timeout=30, what="the workers to join", interval=0.1)
        yield master
        master.quit()
        for proc in procs:
            proc.wait(timeout=30)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _start(master: MasterRunner, phase: PhaseCommand, users: int) -> None:
    """What the master does for a phase: announce it, then start its role's users."""
    master.send_message(PHASE_MESSAGE, phase.model_dump(mode="json"))
    master.start(users, spawn_rate=100, user_classes=classes_for(phase.mode))


def _read(redis_url: str, run_id: str) -> tuple[list[RequestRecord], list[WorkerSample]]:
    keys = stream_keys(run_id)
    client = redis.Redis.from_url(redis_url)
    try:
        records = [RequestRecord.from_json(f[b"r"]) for _, f in client.xrange(keys.records)]
        samples = SampleReader(client, keys.samples).read().workers
    finally:
        client.close()
    return records, samples


def test_locust_worker_process_runs_phases_and_ships_records(redis_server: RedisServer, tmp_path: Path) -> None:
    with run_simulator(preset="gpu-8b") as sim:
        workloads = [
            {"name": "short", "weight": 3, "prompt": {"kind": "synthetic", "tokens": 20}, "output": 8},
            {"name": "long", "weight": 1, "prompt": {"kind": "long_context", "tokens": 2000}, "output": 8},
        ]
        config = _worker_config(tmp_path, redis_server.url, sim.base_url, "e2e", workloads)
        with _cluster(config, workers=1) as master:
            _start(master, PhaseCommand(name="warm", mode="closed", users=4), 4)
            gevent.sleep(2)  # the test: two seconds of each phase
            opened = PhaseCommand(name="steady", mode="open", rate=20, arrival={"kind": "poisson"}, worker_count=1)
            _start(master, opened, 1)
            gevent.sleep(2)
            master.stop()  # returns once every worker reports no user; leaving the block quits them
            # (a worker flushes every record before it exits)
    records, samples = _read(redis_server.url, "e2e")
    phases = {r.phase for r in records}
    assert {"warm", "steady"} <= phases
    assert {r.workload for r in records} == {"short", "long"}
    assert sum(r.ok for r in records) >= 20 and all(r.target == "sim" for r in records)
    steady = [r for r in records if r.phase == "steady"]
    assert 15 <= len(steady) <= 70  # ~40 expected at 20/s for 2 s
    long_prompts = [r.final.prompt_tokens for r in records if r.workload == "long" and r.ok]
    assert long_prompts and min(long_prompts) >= 2000
    assert samples and all(s.worker and s.time > 0 and s.wall_time > 0 for s in samples)
    assert any(s.phase == "steady" and s.target_rate == 20 for s in samples)


def _per_worker(master: MasterRunner) -> list[dict[str, int]]:
    """What each worker reports it runs (after it spawned and stopped users), ordered."""
    return sorted(
        (dict(c.user_classes_count) for c in master.clients.values()),
        key=lambda counts: sorted(counts.items()),
    )


def _drained(redis_url: str, run_id: str, since: float, workers: int) -> bool:
    """Every worker's latest sample, taken after ``since``, shows nothing in flight."""
    latest: dict[str, WorkerSample] = {}
    for sample in _read(redis_url, run_id)[1]:
        latest[sample.worker] = sample
    fresh = [s for s in latest.values() if s.time > since]
    return len(fresh) == workers and all(s.in_flight == 0 for s in fresh)


def test_phase_changes_leave_one_role_per_phase_on_every_worker_and_drain_ends_sending(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers, closed -> open -> closed, then the drain: after each change every worker runs
    only the phase's role (one dispatcher each in the open phase); after the drain nothing new is
    sent and what was in flight finishes (graceful stop timeout, as a run sets it)."""
    closed, dispatcher = "ClosedLoopUser", "OpenLoopDispatcher"
    with run_simulator(preset="gpu-8b") as sim:
        workloads = [{"name": "chat", "prompt": {"kind": "synthetic", "tokens": 20}, "output": 16}]
        config = _worker_config(tmp_path, redis_server.url, sim.base_url, "roles", workloads)
        monkeypatch.setattr(OpenLoopDispatcher, "fixed_count", 2)  # as the master sets it: one per worker
        with _cluster(config, workers=2, stop_timeout=5.0) as master:
            plan = [
                (
                    PhaseCommand(name="c1", mode="closed", users=4, worker_count=2),
                    4,
                    [{closed: 2, dispatcher: 0}] * 2,
                ),
                (
                    PhaseCommand(name="o", mode="open", rate=20, arrival={"kind": "constant"}, worker_count=2),
                    2,
                    [{closed: 0, dispatcher: 1}] * 2,
                ),
                (
                    PhaseCommand(name="c2", mode="closed", users=3, worker_count=2),
                    3,
                    [{closed: 1, dispatcher: 0}, {closed: 2, dispatcher: 0}],
                ),
            ]
            began: dict[str, float] = {}
            for phase, users, expected in plan:
                began[phase.name] = time.monotonic()
                _start(master, phase, users)
                wait_for(
                    lambda e=expected: _per_worker(master) == e,
                    timeout=15,
                    what=lambda p=phase, e=expected: f"{p.name}: {_per_worker(master)} == {e}",
                    interval=0.1,
                )
                gevent.sleep(1.5)  # the test: the phase runs 1.5 s (its rate is measured over it)
            drained = time.monotonic()
            master.send_message(DRAIN_MESSAGE)
            wait_for(  # as the run waits
                lambda: _drained(redis_server.url, "roles", drained, workers=2),
                timeout=10,
                what="the workers to report nothing in flight",
                interval=0.1,
            )
            sent = len(_read(redis_server.url, "roles")[0])
            gevent.sleep(1.0)  # the test: a second in which nothing new may be sent
            assert len(_read(redis_server.url, "roles")[0]) == sent  # nothing new while the users idle
            # the run ends with quit alone, as coordinator.run.master does: after Locust's stop the
            # master forgets each worker for stop_timeout and would not send it the quit
    records, _ = _read(redis_server.url, "roles")
    by_phase: dict[str, list[RequestRecord]] = {}
    for r in records:
        by_phase.setdefault(r.phase, []).append(r)
    assert set(by_phase) == {"c1", "o", "c2"}
    assert all(r.user_id is None for r in by_phase["o"])  # only dispatchers sent in the open phase
    assert len({(r.worker, r.user_id) for r in by_phase["c2"]}) == 3 and None not in {r.user_id for r in by_phase["c2"]}
    assert len({r.worker for r in by_phase["o"]}) == 2  # a dispatcher on each worker
    expected_open = 20 * (began["c2"] - began["o"])  # 20/s in all, not per dispatcher
    assert 0.6 * expected_open <= len(by_phase["o"]) <= 1.3 * expected_open
    assert all(r.ok for r in records), {r.outcome for r in records}
    assert all(r.scheduled <= drained for r in records)  # nothing new after the drain
