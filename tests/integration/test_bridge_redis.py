"""The bridge against a real redis-server: records -> exact counts, once, across kills and restarts."""

from __future__ import annotations

import random
import threading
import time

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from coordinator.bridge.aggregate import US
from coordinator.bridge.consumer import Bridge, BridgeOptions
from coordinator.bridge.process import BridgeProcess
from coordinator.bridge.store import delete_bridge_keys
from coordinator.services.redis_server import RedisServer
from loadgen import metrics
from loadgen.records import RequestRecord
from loadgen.stream.keys import stream_keys
from loadgen.stream.trimming import safe_min_id, trim
from tests.factories import random_record
from tests.fixtures.services import write_records
from tests.fixtures.waiting import wait_for

RUN = "bridge-test"


def xadd(client: redis.Redis, records: list[RequestRecord]) -> None:
    write_records(client, RUN, records)


def make_records(rng: random.Random, n: int) -> list[RequestRecord]:
    return [random_record(rng, run_id=RUN) for _ in range(n)]


def counted(bridge: Bridge, name: str) -> float:
    """One of the bridge's own health counters, as its registry exposes it."""
    value = bridge.registry.get_sample_value(f"finishline_bridge_{name}_total", {"run": RUN})
    assert value is not None, name
    return value


def requests(bridge: Bridge) -> float:
    """Requests counted so far (every label set)."""
    return sum(v for k, v in bridge.aggregate.items() if k.startswith(f"c{US}requests{US}"))


def total(exposition: str, name: str, **match: str) -> float:
    """The sum of one series over every label set that has the ``match`` labels."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in match.items())
    )


def test_duplicates_and_redelivery_count_once(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    rng = random.Random(3)
    records = make_records(rng, 500)
    xadd(client, records)
    xadd(client, records[:50])  # a worker's retried XADD: same record ids again
    bridge = Bridge(BridgeOptions(run_id=RUN, redis_url=redis_server.url, batch=128, block_ms=10))
    for _ in range(20):
        bridge.poll()
    assert bridge.backlog() == 0
    assert requests(bridge) == 500
    assert counted(bridge, "duplicate_records") == 50
    # killed after reading, before applying: the same consumer name re-reads its pending entries
    xadd(client, make_records(rng, 30))
    assert len(bridge.reader.read().ids) == 30
    bridge.close()
    bridge = Bridge(BridgeOptions(run_id=RUN, redis_url=redis_server.url, block_ms=10))
    assert bridge.poll() == 30 and bridge.backlog() == 0
    # a restart restores the counts from Redis
    bridge.close()
    again = Bridge(BridgeOptions(run_id=RUN, redis_url=redis_server.url))
    assert again.aggregate == pytest.approx(bridge.aggregate)
    again.close()
    # the run's teardown removes the bridge's keys, and only those
    assert delete_bridge_keys(client, RUN) >= 2
    assert not list(client.scan_iter(match=f"finishline:{RUN}:bridge:*"))
    assert client.exists(stream_keys(RUN).records)


def test_an_unreadable_entry_is_counted_acknowledged_and_reading_goes_on(redis_server: RedisServer) -> None:
    """The same policy as the collector's (which sets such entries aside in rejected.jsonl)."""
    client = redis.Redis.from_url(redis_server.url)
    rng = random.Random(8)
    key = stream_keys(RUN).records
    before, after = make_records(rng, 20), make_records(rng, 20)
    xadd(client, before)
    client.xadd(key, {"id": "x1", "r": b"{not json"})
    client.xadd(key, {"id": "x2"})  # no record at all
    xadd(client, after)
    bridge = Bridge(BridgeOptions(run_id=RUN, redis_url=redis_server.url, batch=16, block_ms=10))

    def read_all() -> bool:
        bridge.poll()
        return bridge.backlog() == 0

    wait_for(read_all, timeout=10, what="the bridge to read every entry", interval=0)
    assert counted(bridge, "invalid_entries") == 2
    assert requests(bridge) == 40
    assert client.xpending(key, "bridge")["pending"] == 0
    bridge.close()


def test_kill_and_restart_mid_run_loses_and_doubles_nothing(redis_server: RedisServer, tmp_path) -> None:
    """SIGKILL the bridge process three times while a writer XADDs; totals stay exact."""
    client = redis.Redis.from_url(redis_server.url)
    records = make_records(random.Random(4), 6000)
    chunks = [records[i : i + 1500] for i in range(0, len(records), 1500)]

    def write(chunk: list[RequestRecord]) -> None:
        for i in range(0, len(chunk), 100):
            xadd(client, chunk[i : i + 100])
            time.sleep(0.02)  # a worker's pace: the chunk arrives over 0.3 s, not at once

    bridge = BridgeProcess(RUN, redis_server.url, log_path=tmp_path / "bridge.log").start()

    def requests_exposed() -> float:
        return total(bridge.scrape(), "finishline_requests_total")

    kills = 0
    key = stream_keys(RUN).records
    try:
        for chunk in chunks:
            already = requests_exposed()
            writer = threading.Thread(target=write, args=(chunk,))
            writer.start()
            if kills < 3:  # killed once it counts this chunk, while the writer is still at it
                wait_for(lambda a=already: requests_exposed() > a, timeout=20, what="the bridge to count the chunk")
                bridge.kill()
                kills += 1
                bridge.start()
            writer.join()

        def caught_up() -> bool:
            info = {g["name"].decode(): g for g in client.xinfo_groups(key)}["bridge"]
            return int(info["pending"]) + int(info["lag"] or 0) == 0

        wait_for(caught_up, timeout=30, what="the bridge to ack every entry")
        exposition = bridge.scrape()
    finally:
        bridge.stop()
    assert kills == 3
    assert total(exposition, "finishline_requests_total") == len(records)
    assert total(exposition, "finishline_attempts_total") == sum(len(r.attempts) for r in records)
    for cls in ("http_5xx", "timeout"):
        assert total(exposition, "finishline_errors_total", outcome=cls) == sum(1 for r in records if r.outcome == cls)
    n_ttft = sum(1 for r in records if metrics.ttft(r.final) is not None)
    assert total(exposition, "finishline_ttft_seconds_count") == n_ttft
    assert total(exposition, "finishline_output_tokens_total") == sum(metrics.output_tokens(r) for r in records)


def test_two_bridges_sum_to_the_total_and_a_dead_ones_entries_are_reclaimed(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    records = make_records(random.Random(5), 2000)
    xadd(client, records)
    key = stream_keys(RUN).records
    opts = {"run_id": RUN, "redis_url": redis_server.url, "batch": 200, "block_ms": 10, "reclaim_idle_s": 0.3}
    a = Bridge(BridgeOptions(consumer="bridge-a", **opts))
    b = Bridge(BridgeOptions(consumer="bridge-b", **opts))
    dead = Bridge(BridgeOptions(consumer="bridge-dead", **opts))
    # 'dead' takes a batch and dies before applying it: its entries stay pending
    taken = dead.reader.read()
    assert len(taken.ids) == len(taken.records) == 200
    dead.close()

    def idle_long_enough() -> bool:  # what makes another consumer take them over
        left = client.xpending_range(key, "bridge", "-", "+", 1000, consumername="bridge-dead")
        return len(left) == 200 and all(e["time_since_delivered"] > 300 for e in left)

    wait_for(idle_long_enough, timeout=10, what="the dead consumer's entries to idle past reclaim_idle_s")

    def both_done() -> bool:
        a.poll()
        b.poll()
        return a.backlog() == 0 and time.monotonic() > a.reader.next_claim

    wait_for(both_done, timeout=20, what="bridges a and b to read every entry", interval=0)
    assert requests(a) > 0 and requests(b) > 0
    assert requests(a) + requests(b) == len(records)
    assert counted(a, "reclaimed_entries") + counted(b, "reclaimed_entries") == 200


def test_trim_never_drops_what_a_group_still_needs(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    key = stream_keys(RUN).records
    xadd(client, make_records(random.Random(6), 300))
    bridge = Bridge(BridgeOptions(run_id=RUN, redis_url=redis_server.url, block_ms=10))
    assert trim(client, key, ("collector",)) == 0  # the collector's group does not exist yet
    client.xgroup_create(key, "collector", id="0")
    for _ in range(3):
        bridge.poll()
    assert bridge.backlog() == 0
    assert trim(client, key, ("collector",)) == 0  # the collector has read nothing
    got = client.xreadgroup("collector", "c1", {key: ">"}, count=100)[0][1]
    client.xack(key, "collector", *[e[0] for e in got[:60]])  # 60 acked, 40 pending
    assert safe_min_id(client, key, ("collector",)) == got[60][0].decode()
    assert trim(client, key, ("collector",)) == 60
    # everything the collector has not acked or not yet read is still there
    rest = client.xreadgroup("collector", "c1", {key: "0"}, count=1000)[0][1]
    assert [e[0] for e in rest] == [e[0] for e in got[60:]]
    new = client.xreadgroup("collector", "c1", {key: ">"}, count=1000)[0][1]
    assert len(new) == 200
    client.xack(key, "collector", *[e[0] for e in rest + new])
    assert trim(client, key, ("collector",)) == 240
    assert client.xlen(key) == 0
    bridge.close()


def test_the_stream_stays_bounded_while_both_groups_keep_up(redis_server: RedisServer) -> None:
    """A soak in miniature: 4,000 records pass through; the stream never holds more than a few batches."""
    client = redis.Redis.from_url(redis_server.url)
    key = stream_keys(RUN).records
    client.xgroup_create(key, "collector", id="0", mkstream=True)
    bridge = Bridge(BridgeOptions(run_id=RUN, redis_url=redis_server.url, block_ms=1, trim_interval_s=0.01))
    rng = random.Random(7)
    longest = 0
    clock = time.monotonic()
    for _ in range(20):
        xadd(client, make_records(rng, 200))
        longest = max(longest, client.xlen(key))
        got = client.xreadgroup("collector", "c1", {key: ">"}, count=1000)
        client.xack(key, "collector", *[e[0] for e in got[0][1]])
        while bridge.backlog():
            bridge.poll()
        clock += 1.0  # a second of the soak later: a trim is due every time
        bridge.chores(clock)
    assert bridge.lease.held
    assert counted(bridge, "trimmed_entries") >= 3600
    assert client.xlen(key) <= 400 and longest <= 600
    assert requests(bridge) == 4000
    bridge.close()
