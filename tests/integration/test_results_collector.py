"""The collector against a real redis-server: every record written once, across restarts."""

from __future__ import annotations

import dataclasses
import gzip
import zlib
from pathlib import Path

import orjson
import redis

from coordinator.results.collector import GROUP, RECORDS_FILE, Collector, read_records
from coordinator.services.redis_server import RedisServer
from loadgen.samples import WorkerSample
from loadgen.stream.keys import stream_keys
from loadgen.stream.samples import SampleWriter
from tests.factories import record
from tests.fixtures.services import write_records


def _write_unfinished_gzip(path: Path, lines: list[bytes]) -> None:
    """What a collector killed mid-run leaves: its lines flushed (``Z_SYNC_FLUSH``, as it flushes
    after each batch), the gzip member never finished (no trailer)."""
    gz = zlib.compressobj(wbits=31)  # 31: a gzip header, as gzip.open writes
    path.write_bytes(gz.compress(b"".join(line + b"\n" for line in lines)) + gz.flush(zlib.Z_SYNC_FLUSH))


def test_collects_every_record_and_sample(redis_server: RedisServer, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_server.url)
    records = [record(t0=100 + i) for i in range(500)]
    write_records(client, "run1", records)
    sample = WorkerSample(worker="w:1", time=1.0, cpu_percent=5.0, users=2, phase="steady")
    SampleWriter(client, stream_keys("run1").samples).write(sample)
    col = Collector(redis_server.url, "run1", tmp_path)
    col.drain(timeout=10)
    col.close()
    got = list(read_records(tmp_path / "records.jsonl.gz"))
    assert [r.id for r in got] == [r.id for r in records]
    assert col.phase_count("steady") == 500
    assert col.samples() == [sample] and col.latest_samples() == {"w:1": sample}
    with gzip.open(tmp_path / "samples.jsonl.gz") as fh:  # the same field names as on the stream
        assert [WorkerSample.from_json(line) for line in fh.read().splitlines()] == [sample]
    assert client.xpending(stream_keys("run1").records, GROUP)["pending"] == 0


def test_restart_writes_each_record_once(redis_server: RedisServer, tmp_path: Path) -> None:
    """A collector dies after reading (no ack, file cut short); the next one claims and de-duplicates."""
    client = redis.Redis.from_url(redis_server.url)
    first = [record(t0=i) for i in range(200)]
    write_records(client, "run2", first)
    # collector-a read 150 entries and died before acknowledging any: 100 of them reached its file
    client.xgroup_create(stream_keys("run2").records, GROUP, id="0")
    resp = client.xreadgroup(GROUP, "collector-a", {stream_keys("run2").records: ">"}, count=150)
    entries = resp[0][1]
    _write_unfinished_gzip(tmp_path / RECORDS_FILE, [fields[b"r"] for _id, fields in entries[:100]])
    assert len(list(read_records(tmp_path / RECORDS_FILE))) == 100  # readable up to where it stopped
    # a duplicate of an already-written record arrives too (a worker retried its batch)
    write_records(client, "run2", [first[0]])
    later = [record(t0=1000 + i) for i in range(50)]
    write_records(client, "run2", later)

    col2 = Collector(redis_server.url, "run2", tmp_path, consumer="collector-b")
    col2.drain(timeout=10)
    col2.close()
    ids = [r.id for r in read_records(tmp_path / "records.jsonl.gz")]
    assert len(ids) == len(set(ids)) == 250
    assert set(ids) == {r.id for r in first + later}
    info = client.xinfo_groups(stream_keys("run2").records)[0]
    assert info["pending"] == 0
    with gzip.open(tmp_path / "records.jsonl.gz") as fh:  # the rewritten file is a valid gzip
        assert len(fh.read().splitlines()) == 250


def test_background_thread_and_finish(redis_server: RedisServer, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_server.url)
    col = Collector(redis_server.url, "run3", tmp_path).start()
    batches: list[int] = []
    col.on_batch = lambda recs: batches.append(len(recs))
    for k in range(5):
        write_records(client, "run3", [record(t0=k * 10 + i) for i in range(40)])
    col.finish(drain_timeout=10)
    assert col.count() == 200 and sum(batches) == 200
    assert len(list(read_records(tmp_path / "records.jsonl.gz"))) == 200
    assert (tmp_path / "samples.jsonl.gz").exists()


def test_an_unreadable_entry_is_set_aside_and_collection_goes_on(redis_server: RedisServer, tmp_path: Path) -> None:
    """A worker of another version or a broken write must not stop the records after it."""
    client = redis.Redis.from_url(redis_server.url)
    key = stream_keys("run3").records
    before, after = record(t0=1), record(t0=2)
    write_records(client, "run3", [before])
    client.xadd(key, {"id": "x1", "r": b"{not json"})
    future = orjson.loads(record(t0=3).to_json()) | {"schema": 99}
    client.xadd(key, {"id": "x2", "r": orjson.dumps(future)})
    client.xadd(key, {"id": "x3"})  # no record at all
    write_records(client, "run3", [after])
    col = Collector(redis_server.url, "run3", tmp_path)
    col.drain(timeout=10)
    col.close()
    assert [r.id for r in read_records(tmp_path / "records.jsonl.gz")] == [before.id, after.id]
    assert col.rejected == 3 and col.error is None
    rejected = [orjson.loads(line) for line in (tmp_path / "rejected.jsonl").read_bytes().splitlines()]
    assert [r["entry"]["id"] for r in rejected] == ["x1", "x2", "x3"]
    assert "schema 99" in rejected[1]["reason"] and rejected[0]["entry"]["r"] == "{not json"
    assert "no field r" in rejected[2]["reason"]
    assert client.xpending(key, GROUP)["pending"] == 0


def test_records_and_samples_of_a_worker_on_another_machine_arrive_on_our_clock(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A worker on another kernel has its own monotonic clock: the collector adds its offset
    (learnt when it joined) to its timestamps, and leaves this machine's workers' as they are."""
    client = redis.Redis.from_url(redis_server.url)
    here, far = record(t0=100.0), dataclasses.replace(record(t0=7.0), worker="far:9")
    write_records(client, "run-clock", [here, far])
    writer = SampleWriter(client, stream_keys("run-clock").samples)
    writer.write(WorkerSample(worker="far:9", time=8.0, phase="steady"))
    writer.write(WorkerSample(worker="w:1", time=101.0, phase="steady"))
    col = Collector(redis_server.url, "run-clock", tmp_path, clock_offsets={"far:9": 1000.0})
    col.drain(timeout=10)
    col.close()
    got = {r.worker: r for r in read_records(tmp_path / "records.jsonl.gz")}
    assert got[here.worker] == here
    assert got["far:9"].scheduled == far.scheduled + 1000.0 and got["far:9"].end == far.end + 1000.0
    assert got["far:9"].final.sent == far.final.sent + 1000.0
    # its figures are differences on its clock: the same (to float rounding, far under a microsecond)
    assert abs((got["far:9"].final.end - got["far:9"].final.sent) - (far.final.end - far.final.sent)) < 1e-9
    assert {w: s.time for w, s in col.latest_samples().items()} == {"far:9": 1008.0, "w:1": 101.0}
