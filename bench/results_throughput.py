"""How fast results are made: collector (Redis Stream -> records.jsonl.gz) and exact summary.

Run: ``python bench/results_throughput.py [N]`` (default 50,000 synthetic records). Starts a
private redis-server on loopback, writes N records with pipelined XADD, times the collector
draining them, then times the summary as a run makes it, from the records file (one pass into
columns, then ``summarize``), and the HTML report over the same columns.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from coordinator.results.collector import Collector
from coordinator.results.columns import read_columns
from coordinator.results.report import write_report
from coordinator.results.summarize import summarize
from coordinator.services.redis_server import RedisServer
from loadgen.records import Attempt, RequestRecord
from loadgen.stream.keys import stream_keys
from loadgen.stream.records import RecordWriter


def record(i: int) -> RequestRecord:
    sent = 1000.0 + i * 0.001
    chunks = [int((0.05 + k * 0.01) * 1e6) for k in range(64)]
    attempt = Attempt(
        number=1,
        sent=sent,
        end=sent + 0.7,
        status=200,
        first_byte=sent + 0.04,
        first_token=sent + 0.05,
        chunk_us=chunks,
        chunk_tokens=[1] * 64,
        prompt_tokens=300,
        output_tokens=64,
    )
    return RequestRecord(
        id=uuid.uuid4().hex,
        run_id="bench",
        worker="w:1",
        phase=f"p{i % 3}",
        workload=f"w{i % 2}",
        api="chat",
        stream=True,
        scheduled=sent,
        started=sent,
        end=sent + 0.7,
        wall_time=0.0,
        attempts=[attempt],
    )


def main(n: int) -> None:
    records = [record(i) for i in range(n)]
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        client = redis.Redis.from_url(server.url)
        key = stream_keys("bench").records
        writer = RecordWriter(client, key)
        for start in range(0, n, 1000):
            writer.write_records(records[start : start + 1000])
        collector = Collector(server.url, "bench", Path(tmp))
        t0 = time.perf_counter()
        collector.drain(timeout=600)
        collected = time.perf_counter() - t0
        collector.close()
        t0 = time.perf_counter()
        got = read_columns(collector.path)
        read = time.perf_counter() - t0
        summary = summarize(got)
        summarised = time.perf_counter() - t0
        assert summary.run.records == n, summary.run.records
        t0 = time.perf_counter()
        write_report(Path(tmp) / "report.html", summary, got, [])
        reported = time.perf_counter() - t0
    print(f"records: {n:,} (64 tokens each)")
    print(f"collector: {n / collected:,.0f} records/s ({collected:.2f} s)")
    print(f"summary:   {n / summarised:,.0f} records/s ({summarised:.2f} s, of which {read:.2f} s reading the file)")
    print(f"report:    {reported:.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
