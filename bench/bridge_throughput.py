"""Bridge benchmark: records/s one bridge process applies, and XADD-to-PromQL lag at 5,000 records/s.

    python bench/bridge_throughput.py [--records 40000] [--rate 5000] [--seconds 15]

Real redis-server, one real `finishline bridge` process, a real prometheus scraping it every
second (as `finishline run` does) — all on loopback. Records are shaped like streamed chat
completions (prompt ~200 tokens, 64 output tokens in 64 chunks, 5% errors).

1. Throughput: N records are written first, then one bridge is started; records/s is N over
   the time from its first read to its last acknowledgement.
2. Lag: a writer XADDs at the offered rate in 50 ms batches; a poller queries Prometheus
   every 50 ms; each batch's lag is the time from its XADD to the first query whose total
   includes it. The bridge's own share (XADD -> visible on its /metrics) is measured the
   same way against the bridge directly.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coordinator.bridge.process import BridgeProcess
from coordinator.bridge.store import GROUP
from coordinator.services.prometheus_server import PrometheusServer
from coordinator.services.redis_server import RedisServer
from dashboards.prometheus_config import PrometheusPlan, build_config
from loadgen.records import Attempt, RequestRecord
from loadgen.stream.group import backlog
from loadgen.stream.keys import stream_keys
from loadgen.stream.records import RecordWriter


def record(rng: random.Random, run_id: str) -> tuple[str, bytes]:
    now = time.monotonic()
    if rng.random() < 0.05:
        attempt = Attempt(number=1, sent=now, end=now + 0.05, status=503, error="http_5xx")
    else:
        ttft = rng.lognormvariate(-2.5, 0.5)
        chunk_us = [int((ttft + i * rng.uniform(0.008, 0.03)) * 1e6) for i in range(64)]
        attempt = Attempt(
            number=1,
            sent=now,
            end=now + chunk_us[-1] / 1e6,
            status=200,
            first_byte=now + ttft,
            first_token=now + ttft,
            chunk_us=chunk_us,
            chunk_tokens=[1] * 64,
            prompt_tokens=200,
            output_tokens=64,
        )
    rec = RequestRecord(
        id=uuid.uuid4().hex,
        run_id=run_id,
        worker="bench:1",
        phase="steady",
        workload=rng.choice(["chat", "rag"]),
        api="chat",
        stream=True,
        scheduled=now,
        started=now,
        end=attempt.end,
        wall_time=time.time(),
        attempts=[attempt],
        target="bench",
    )
    return rec.id, rec.to_json()


def xadd_all(client: redis.Redis, key: str, payloads: list[tuple[str, bytes]]) -> None:
    """As the workers' RecordSink does: one pipelined round trip of XADDs (fields id, r)."""
    RecordWriter(client, key).write(payloads)


def throughput(url: str, n: int) -> float:
    run_id = "bench-throughput"
    client = redis.Redis.from_url(url)
    key = stream_keys(run_id).records
    rng = random.Random(1)
    payloads = [record(rng, run_id) for _ in range(n)]
    for i in range(0, n, 2000):
        xadd_all(client, key, payloads[i : i + 2000])
    bridge = BridgeProcess(run_id, url, extra_args=["--trim-require", ""])
    bridge.start()
    t0 = time.monotonic()
    try:
        while backlog(client, key, GROUP) > 0:
            time.sleep(0.01)
        elapsed = time.monotonic() - t0
    finally:
        bridge.stop()
    return n / elapsed


def total_from_exposition(text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("finishline_requests_total{")
    )


def lag(url: str, rate: float, seconds: float) -> dict[str, list[float]]:
    run_id = "bench-lag"
    client = redis.Redis.from_url(url)
    key = stream_keys(run_id).records
    rng = random.Random(2)
    batch = max(1, int(rate * 0.05))
    n_batches = int(seconds / 0.05)
    batches = [[record(rng, run_id) for _ in range(batch)] for _ in range(n_batches)]
    bridge = BridgeProcess(run_id, url, extra_args=["--trim-require", ""]).start()
    plan = PrometheusPlan(run_id=run_id, target="bench", bridges=[bridge.address], scrape_interval_s=1.0)
    prom = PrometheusServer(build_config(plan)).start()
    written: list[tuple[float, int]] = []  # (monotonic time of XADD, cumulative records)
    seen_prom: list[tuple[float, float]] = []
    seen_bridge: list[tuple[float, float]] = []
    done = threading.Event()

    def writer() -> None:
        start = time.monotonic()
        total = 0
        for i, payloads in enumerate(batches):
            delay = start + i * 0.05 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            xadd_all(client, key, payloads)
            total += len(payloads)
            written.append((time.monotonic(), total))
        done.set()

    def poll_prometheus() -> None:
        end = None
        while end is None or time.monotonic() < end:
            if done.is_set() and end is None:
                end = time.monotonic() + 15
            try:
                value = prom.value(f'sum(finishline_requests_total{{run="{run_id}"}})') or 0.0
            except OSError:
                value = 0.0
            seen_prom.append((time.monotonic(), value))
            if written and value >= written[-1][1] and done.is_set():
                break
            time.sleep(0.05)

    def poll_bridge() -> None:
        end = None
        while end is None or time.monotonic() < end:
            if done.is_set() and end is None:
                end = time.monotonic() + 15
            value = total_from_exposition(bridge.scrape())
            seen_bridge.append((time.monotonic(), value))
            if written and value >= written[-1][1] and done.is_set():
                break
            time.sleep(0.05)

    try:
        prom.wait_targets_up()
        threads = [threading.Thread(target=f) for f in (writer, poll_prometheus, poll_bridge)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        achieved = written[-1][1] / (written[-1][0] - written[0][0] + 0.05)
    finally:
        prom.stop()
        bridge.stop()

    def lags(seen: list[tuple[float, float]]) -> list[float]:
        out = []
        j = 0
        for t_write, cum in written:
            while j < len(seen) and (seen[j][0] < t_write or seen[j][1] < cum):
                j += 1
            if j == len(seen):
                break
            out.append(seen[j][0] - t_write)
        return out

    return {
        "prometheus": lags(seen_prom),
        "bridge": lags(seen_bridge),
        "achieved": [achieved],
        "batches": [float(len(written))],
    }


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=40_000)
    parser.add_argument("--rate", type=float, default=5_000.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    with RedisServer() as server:
        rps = throughput(server.url, args.records)
        print(f"throughput: one bridge process applied {rps:,.0f} records/s ({args.records:,} records, 64 tokens each)")
        result = lag(server.url, args.rate, args.seconds)
    achieved = result["achieved"][0]
    print(
        f"lag at {args.rate:,.0f} records/s offered ({achieved:,.0f} achieved by the writer, {args.seconds:.0f} s, scrape every 1 s):"
    )
    for name in ("bridge", "prometheus"):
        values = result[name]
        if not values:
            print(f"  {name}: no batch became visible")
            continue
        print(
            f"  XADD -> visible in {name + ' query':<17}: p50 {statistics.median(values) * 1000:7.0f} ms"
            f"  p95 {pct(values, 0.95) * 1000:7.0f} ms  max {max(values) * 1000:7.0f} ms  ({len(values)}/{int(result['batches'][0])} batches)"
        )


if __name__ == "__main__":
    main()
