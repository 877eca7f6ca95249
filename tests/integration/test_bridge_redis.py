"""The bridge: records -> exact counts, once, across kills and restarts (real redis-server)."""

from __future__ import annotations

import random
import re
import threading
import time
import uuid

import pytest
import redis

from coordinator.bridge.aggregate import US, record_increments, split_labels
from coordinator.bridge.consumer import Bridge, BridgeOptions
from coordinator.bridge.process import BridgeProcess
from coordinator.bridge.store import delete_bridge_keys
from coordinator.results.slo import Slo
from coordinator.results.summarize import summarize_group
from coordinator.services.redis_server import RedisServer
from loadgen import metrics
from loadgen.records import Attempt, RequestRecord
from loadgen.stream import RecordWriter, safe_min_id, stream_keys, trim

RUN = "bridge-test"


def make_record(rng: random.Random, run_id: str = RUN, phase: str = "steady") -> RequestRecord:
    """A record shaped like a streamed chat completion, with a retry or an error now and then."""
    t0 = time.monotonic()
    attempts = []
    sent = t0 + rng.uniform(0, 0.002)
    if rng.random() < 0.1:  # a failed first attempt, retried
        attempts.append(Attempt(number=1, sent=sent, end=sent + 0.01, status=429, error="http_429", retry_wait=0.0))
        sent += 0.05
    error = rng.choice([None] * 8 + ["http_5xx", "timeout"])
    n_tokens = rng.randint(1, 40)
    ttft = rng.lognormvariate(-2.5, 0.8)
    gaps = [int(rng.uniform(5_000, 40_000)) for _ in range(n_tokens - 1)]
    chunk_us = [int(ttft * 1e6)]
    for g in gaps:
        chunk_us.append(chunk_us[-1] + g)
    end = sent + chunk_us[-1] / 1e6 + 0.001
    if error is None:
        attempts.append(
            Attempt(
                number=len(attempts) + 1,
                sent=sent,
                end=end,
                status=200,
                first_byte=sent + ttft / 2,
                first_token=sent + ttft,
                chunk_us=chunk_us,
                chunk_tokens=[1] * n_tokens,
                prompt_tokens=rng.randint(10, 500),
                output_tokens=n_tokens,
                retry_wait=0.05 if attempts else 0.0,
            )
        )
    else:
        attempts.append(
            Attempt(
                number=len(attempts) + 1,
                sent=sent,
                end=sent + 0.2,
                status=500 if error == "http_5xx" else None,
                error=error,
                retry_wait=0.05 if attempts else 0.0,
            )
        )
    return RequestRecord(
        id=uuid.uuid4().hex,
        run_id=run_id,
        worker="test:1",
        phase=phase,
        workload=rng.choice(["chat", "long"]),
        api="chat",
        stream=True,
        scheduled=t0,
        started=t0,
        end=attempts[-1].end,
        wall_time=time.time(),
        attempts=attempts,
        target="sim",
    )


def xadd(client: redis.Redis, records: list[RequestRecord], run_id: str = RUN) -> None:
    RecordWriter(client, stream_keys(run_id).records).write_records(records)


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of an exposition, keyed by (name, sorted labels)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        assert m, line
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or "")))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def total(samples: dict, name: str, **match: str) -> float:
    return sum(v for (n, labels), v in samples.items() if n == name and all((k, w) in labels for k, w in match.items()))


# ------------------------------------------------------------------------------ unit


def test_increments_follow_loadgen_metrics() -> None:
    rng = random.Random(1)
    records = [make_record(rng) for _ in range(300)]
    inc: dict[str, float] = {}
    for r in records:
        record_increments(r, "scn", metrics.SloRule(), inc)
    by = lambda kind, name: {k: v for k, v in inc.items() if k.startswith(f"{kind}{US}{name}{US}")}  # noqa: E731
    assert sum(by("c", "requests").values()) == len(records)
    assert sum(by("c", "attempts").values()) == sum(len(r.attempts) for r in records)
    assert sum(by("c", "retries").values()) == sum(r.retries for r in records)
    assert sum(by("c", "errors").values()) == sum(1 for r in records if not r.ok)
    assert sum(by("c", "output_tokens").values()) == sum(metrics.output_tokens(r) for r in records)
    ttfts = [metrics.ttft(r.final) for r in records if metrics.ttft(r.final) is not None]
    assert sum(by("b", "ttft").values()) == len(ttfts)
    assert sum(by("s", "ttft").values()) == pytest.approx(sum(ttfts))
    itls = [g for r in records for g in metrics.itl(r.final)]
    assert sum(by("b", "itl").values()) == len(itls)
    assert sum(by("s", "itl").values()) == pytest.approx(sum(itls))
    # every ITL lands in the bucket Prometheus would use (le is inclusive)
    buckets = metrics.PROM_HISTOGRAMS["itl"][1]
    expected = [0] * (len(buckets) + 1)
    for g in itls:
        expected[next((i for i, le in enumerate(buckets) if g <= le), len(buckets))] += 1
    got = [0] * (len(buckets) + 1)
    for k, v in by("b", "itl").items():
        got[int(k.rsplit(US, 1)[1])] += int(v)
    assert got == expected
    labels = {tuple(split_labels(k.split(US)[2])) for k in by("c", "requests")}
    assert all(len(lab) == 5 and lab[0] == "scn" for lab in labels)


def test_goodput_matches_the_summary() -> None:
    rng = random.Random(2)
    records = [make_record(rng) for _ in range(400)]
    slo = Slo(ttft_ms=100.0, tpot_ms=25.0, e2e_ms=600.0)
    inc: dict[str, float] = {}
    for r in records:
        record_increments(r, "", slo.rule(), inc)
    good = sum(v for k, v in inc.items() if k.startswith(f"c{US}good_requests{US}"))
    assert 0 < good < len(records)
    assert any(r.ok and metrics.tpot(r.final) is None for r in records)  # one-token answers are among them
    assert good == summarize_group(records, 10.0, slo).goodput.requests


# ------------------------------------------------------------------------------ real redis


@pytest.mark.slow
def test_duplicates_and_redelivery_count_once(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    rng = random.Random(3)
    records = [make_record(rng) for _ in range(500)]
    xadd(client, records)
    xadd(client, records[:50])  # a worker's retried XADD: same record ids again
    bridge = Bridge(BridgeOptions(run_id=RUN, redis_url=redis_server.url, batch=128, block_ms=10))
    for _ in range(20):
        bridge.poll()
    assert bridge.backlog() == 0
    req = sum(v for k, v in bridge.aggregate.items() if k.startswith(f"c{US}requests{US}"))
    assert req == 500
    assert bridge.duplicates._value.get() == 50
    # killed after reading, before applying: the same consumer name re-reads its pending entries
    xadd(client, [make_record(rng) for _ in range(30)])
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


@pytest.mark.slow
def test_an_unreadable_entry_is_counted_acknowledged_and_reading_goes_on(redis_server: RedisServer) -> None:
    """The same policy as the collector's (which sets such entries aside in rejected.jsonl)."""
    client = redis.Redis.from_url(redis_server.url)
    rng = random.Random(8)
    key = stream_keys(RUN).records
    before, after = [make_record(rng) for _ in range(20)], [make_record(rng) for _ in range(20)]
    xadd(client, before)
    client.xadd(key, {"id": "x1", "r": b"{not json"})
    client.xadd(key, {"id": "x2"})  # no record at all
    xadd(client, after)
    bridge = Bridge(BridgeOptions(run_id=RUN, redis_url=redis_server.url, batch=16, block_ms=10))
    for _ in range(20):
        if bridge.backlog() == 0:
            break
        bridge.poll()
    assert bridge.backlog() == 0 and bridge.invalid._value.get() == 2
    assert sum(v for k, v in bridge.aggregate.items() if k.startswith(f"c{US}requests{US}")) == 40
    assert client.xpending(key, "bridge")["pending"] == 0
    bridge.close()


@pytest.mark.slow
def test_kill_and_restart_mid_run_loses_and_doubles_nothing(redis_server: RedisServer, tmp_path) -> None:
    """SIGKILL the bridge process three times while a writer XADDs; totals stay exact."""
    client = redis.Redis.from_url(redis_server.url)
    rng = random.Random(4)
    records = [make_record(rng) for _ in range(6000)]
    chunks = [records[i : i + 1500] for i in range(0, len(records), 1500)]

    def write(chunk: list[RequestRecord]) -> None:
        for i in range(0, len(chunk), 100):
            xadd(client, chunk[i : i + 100])
            time.sleep(0.02)

    bridge = BridgeProcess(RUN, redis_server.url, log_path=tmp_path / "bridge.log").start()
    kills = 0
    key = stream_keys(RUN).records
    try:
        for chunk in chunks:
            writer = threading.Thread(target=write, args=(chunk,))
            writer.start()
            time.sleep(0.15)  # the bridge is busy applying this chunk when it dies
            if kills < 3:
                bridge.kill()
                kills += 1
                bridge.start()
            writer.join()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = {g["name"].decode(): g for g in client.xinfo_groups(key)}["bridge"]
            if int(info["pending"]) + int(info["lag"] or 0) == 0:
                break
            time.sleep(0.1)
        samples = parse_metrics(bridge.scrape())
    finally:
        bridge.stop()
    assert kills == 3
    assert total(samples, "finishline_requests_total") == len(records)
    assert total(samples, "finishline_attempts_total") == sum(len(r.attempts) for r in records)
    for cls in ("http_5xx", "timeout"):
        assert total(samples, "finishline_errors_total", outcome=cls) == sum(1 for r in records if r.outcome == cls)
    n_ttft = sum(1 for r in records if metrics.ttft(r.final) is not None)
    assert total(samples, "finishline_ttft_seconds_count") == n_ttft
    assert total(samples, "finishline_output_tokens_total") == sum(metrics.output_tokens(r) for r in records)


@pytest.mark.slow
def test_two_bridges_sum_to_the_total_and_a_dead_ones_entries_are_reclaimed(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    rng = random.Random(5)
    records = [make_record(rng) for _ in range(2000)]
    xadd(client, records)
    opts = dict(run_id=RUN, redis_url=redis_server.url, batch=200, block_ms=10, reclaim_idle_s=0.3)
    a = Bridge(BridgeOptions(consumer="bridge-a", **opts))
    b = Bridge(BridgeOptions(consumer="bridge-b", **opts))
    dead = Bridge(BridgeOptions(consumer="bridge-dead", **opts))
    # 'dead' takes a batch and dies before applying it: its entries stay pending
    taken = dead.reader.read()
    assert len(taken.ids) == len(taken.records) == 200
    dead.close()
    time.sleep(0.4)
    for _ in range(40):
        a.poll()
        b.poll()
        if a.backlog() == 0 and time.monotonic() > a.reader.next_claim:
            break
    req = lambda br: sum(v for k, v in br.aggregate.items() if k.startswith(f"c{US}requests{US}"))  # noqa: E731
    assert req(a) > 0 and req(b) > 0
    assert req(a) + req(b) == len(records)
    assert a.reclaimed._value.get() + b.reclaimed._value.get() == 200


@pytest.mark.slow
def test_trim_never_drops_what_a_group_still_needs(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    key = stream_keys(RUN).records
    rng = random.Random(6)
    records = [make_record(rng) for _ in range(300)]
    xadd(client, records)
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


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--host", "0.0.0.0"], "--host"),
        (["--slo-objective", "1.5"], "slo_objective"),
        ([], "--redis-url: cannot connect"),
    ],
)
def test_bad_bridge_options_give_one_line_and_exit_2(args: list[str], needle: str, capsys) -> None:  # type: ignore[no-untyped-def]
    from coordinator.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["bridge", "--run-id", RUN, "--redis-url", "redis://127.0.0.1:1/0", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


@pytest.mark.slow
def test_the_stream_stays_bounded_while_both_groups_keep_up(redis_server: RedisServer) -> None:
    """A soak in miniature: 4,000 records pass through; the stream never holds more than a few batches."""
    client = redis.Redis.from_url(redis_server.url)
    key = stream_keys(RUN).records
    client.xgroup_create(key, "collector", id="0", mkstream=True)
    bridge = Bridge(BridgeOptions(run_id=RUN, redis_url=redis_server.url, block_ms=1, trim_interval_s=0.01))
    rng = random.Random(7)
    longest = 0
    for _ in range(20):
        xadd(client, [make_record(rng) for _ in range(200)])
        longest = max(longest, client.xlen(key))
        got = client.xreadgroup("collector", "c1", {key: ">"}, count=1000)
        client.xack(key, "collector", *[e[0] for e in got[0][1]])
        while bridge.backlog():
            bridge.poll()
        time.sleep(0.011)
        bridge._chores(time.monotonic())
    assert bridge.lease.held
    assert bridge.trimmed._value.get() >= 3600
    assert client.xlen(key) <= 400 and longest <= 600
    assert sum(v for k, v in bridge.aggregate.items() if k.startswith(f"c{US}requests{US}")) == 4000
    bridge.close()
