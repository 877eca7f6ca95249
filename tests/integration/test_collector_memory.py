"""The collector holds nothing per record and trims the stream itself (real redis-server)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import redis

from coordinator.results.collector import GROUP, Collector, read_records
from coordinator.services.redis_server import RedisServer
from loadgen.records import RequestRecord
from loadgen.stream.keys import stream_keys
from tests.factories import record as make_record
from tests.fixtures.services import write_records


def test_the_collector_holds_nothing_per_record(redis_server: RedisServer, tmp_path: Path) -> None:
    """Memory after 4,000 records and after 16,000 more: under 100 bytes per record of growth."""
    client = redis.Redis.from_url(redis_server.url)
    col = Collector(redis_server.url, "mem", tmp_path, dedup_ids=1000, dedup_s=0.0)
    batches = [[make_record(t0=100 + i * 0.01 + b) for i in range(500)] for b in range(40)]

    def collect(part: list[list[RequestRecord]]) -> None:
        for batch in part:
            write_records(client, "mem", batch)
            col.drain(timeout=10)

    tracemalloc.start()
    try:
        collect(batches[:8])
        before = tracemalloc.take_snapshot()
        collect(batches[8:])
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    col.close()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert col.count() == 20_000 and col.phase_count("steady") == 20_000
    assert growth / 16_000 < 100, f"{growth / 16_000:.0f} bytes per record"
    assert len(col.recent_ids) <= 2000
    assert len(list(read_records(col.path))) == 20_000


def test_recovery_reads_the_file_once_and_remembers_only_its_tail(redis_server: RedisServer, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_server.url)
    records = [make_record(t0=i, phase="a" if i % 3 else "b") for i in range(3000)]
    write_records(client, "rec", records)
    first = Collector(redis_server.url, "rec", tmp_path, dedup_ids=500)
    first.drain(timeout=10)
    first.close()
    # the last record comes again (a sink resent its batch), and one that is new
    late = make_record(t0=5000)
    write_records(client, "rec", [records[-1], late])
    again = Collector(redis_server.url, "rec", tmp_path, consumer="collector-2", dedup_ids=500)
    assert len(again.recent_ids) == 500 and records[-1].id in again.recent_ids and records[0].id not in again.recent_ids
    assert again.count() == 3000 and again.phase_count("b") == 1000 and again.phase_count("a") == 2000
    again.drain(timeout=10)
    again.close()
    ids = [r.id for r in read_records(tmp_path / "records.jsonl.gz")]
    assert ids == [r.id for r in records] + [late.id]


def test_the_collector_trims_the_stream_without_a_bridge(redis_server: RedisServer, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_server.url)
    key = stream_keys("trim").records
    col = Collector(redis_server.url, "trim", tmp_path, trim_every_s=0.0, trim_keep_s=0.0)
    write_records(client, "trim", [make_record(t0=i) for i in range(1000)])
    col.drain(timeout=10)
    assert col.trimmed == 1000 and client.xlen(key) == 0
    # a second group that has read nothing: what it still needs stays
    client.xgroup_create(key, "bridge", id="$")
    write_records(client, "trim", [make_record(t0=2000 + i) for i in range(300)])
    col.drain(timeout=10)
    assert client.xlen(key) == 300 and client.xpending(key, GROUP)["pending"] == 0
    got = client.xreadgroup("bridge", "b1", {key: ">"}, count=1000)[0][1]
    client.xack(key, "bridge", *[e[0] for e in got[:100]])
    col.poll(block_ms=1)
    assert client.xlen(key) == 200
    col.close()


def test_trimming_keeps_the_last_seconds_for_a_group_that_comes_late(redis_server: RedisServer, tmp_path: Path) -> None:
    """The bridge starts after the collector: the entries of the last ``trim_keep_s`` wait for it."""
    client = redis.Redis.from_url(redis_server.url)
    key = stream_keys("late").records
    col = Collector(redis_server.url, "late", tmp_path, trim_every_s=0.0, trim_keep_s=30.0)
    write_records(client, "late", [make_record(t0=i) for i in range(200)])
    col.drain(timeout=10)
    assert col.trimmed == 0 and client.xlen(key) == 200
    col.close()
