"""A real Locust worker process (``locust -f loadgen/locustfile.py --worker``) driven by a master
in this process, shipping records and samples to a real redis-server; and the sink on its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import gevent
import orjson
import pytest
import redis
from locust.env import Environment
from locust.event import Events

from coordinator.services.ports import free_port
from coordinator.services.redis_server import RedisServer
from loadgen.config import PHASE_MESSAGE, PhaseCommand
from loadgen.locustfile import LLMUser
from loadgen.records import Attempt, RequestRecord
from loadgen.stream import RecordSink, SampleReader, stream_keys
from tests.fixtures.simulator import run_simulator

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _record(i: int) -> RequestRecord:
    return RequestRecord(
        id=f"r{i}",
        run_id="sinktest",
        worker="w",
        phase="p",
        workload="w",
        api="chat",
        stream=True,
        scheduled=1.0,
        started=1.0,
        end=2.0,
        wall_time=0.0,
        attempts=[Attempt(number=1, sent=1.0, end=2.0, status=200, chunk_us=list(range(50)), chunk_tokens=[1] * 50)],
    )


def test_sink_batches_and_loses_nothing_at_close(redis_server: RedisServer) -> None:
    sink = RecordSink(redis_server.url, "sinktest", batch_size=100, flush_interval=0.05).start()
    for i in range(1234):
        sink.add(_record(i))
        if i % 300 == 0:
            gevent.sleep(0)
    sink.close()  # the last partial batch is flushed here
    client = redis.Redis.from_url(redis_server.url)
    entries = client.xrange(stream_keys("sinktest").records)
    assert len(entries) == 1234 and sink.sent == 1234
    ids = [fields[b"id"].decode() for _, fields in entries]
    assert ids == [f"r{i}" for i in range(1234)]  # in order, once each
    back = RequestRecord.from_json(entries[5][1][b"r"])
    assert back == _record(5)


def test_sink_keeps_records_while_redis_is_down() -> None:
    with RedisServer() as server:
        port = server.port
        sink = RecordSink(server.url, "down", batch_size=10, flush_interval=0.05).start()
    for i in range(25):  # redis is gone: these stay queued
        sink.add(_record(i))
    gevent.sleep(0.3)
    assert sink.pending == 25 and sink.failures >= 1
    with RedisServer(port=port) as server:
        sink.close(timeout=10)
        assert redis.Redis.from_url(server.url).xlen(stream_keys("down").records) == 25


def test_locust_worker_process_runs_phases_and_ships_records(redis_server: RedisServer, tmp_path: Path) -> None:
    with run_simulator(preset="gpu-8b") as sim:
        config = {
            "run_id": "e2e",
            "redis_url": redis_server.url,
            "seed": 1,
            "target": {"base_url": sim.base_url + "/v1", "model": "sim", "name": "sim"},
            "workloads": [
                {"name": "short", "weight": 3, "prompt": {"kind": "synthetic", "tokens": 20}, "output": 8},
                {"name": "long", "weight": 1, "prompt": {"kind": "long_context", "tokens": 2000}, "output": 8},
            ],
            "record": {"flush_interval": 0.05, "sample_interval": 0.5},
        }
        path = tmp_path / "worker.json"
        path.write_bytes(orjson.dumps(config))
        port = free_port()
        env = Environment(user_classes=[LLMUser], events=Events())
        master = env.create_master_runner(master_bind_host="127.0.0.1", master_bind_port=port)
        worker = subprocess.Popen(
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
            env=dict(os.environ, FINISHLINE_WORKER_CONFIG=str(path), PYTHONPATH=str(ROOT)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 30
            while master.worker_count < 1:
                assert worker.poll() is None, worker.stdout.read().decode() if worker.stdout else ""
                assert time.monotonic() < deadline, "worker did not connect"
                gevent.sleep(0.1)
            closed = PhaseCommand(name="warm", mode="closed", users=4)
            master.send_message(PHASE_MESSAGE, closed.model_dump(mode="json"))
            master.start(4, spawn_rate=100)
            gevent.sleep(2)
            opened = PhaseCommand(name="steady", mode="open", rate=20, arrival={"kind": "poisson"}, worker_count=1)
            master.send_message(PHASE_MESSAGE, opened.model_dump(mode="json"))
            master.start(1, spawn_rate=100)
            gevent.sleep(2)
            master.stop()
            gevent.sleep(0.5)
            master.quit()
            worker.wait(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    keys = stream_keys("e2e")
    client = redis.Redis.from_url(redis_server.url)
    records = [RequestRecord.from_json(f[b"r"]) for _, f in client.xrange(keys.records)]
    samples = SampleReader(client, keys.samples).read().workers
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
