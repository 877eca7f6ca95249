"""Container samples in the samples stream -> the bridge's ``finishline_container_*`` series (real redis-server).

The Docker side (a real container, an OOM kill, a whole run into Prometheus) is in
``tests/test_docker_live_metrics.py``; here the stream seam and the exposition rules.
"""

from __future__ import annotations

import time
import uuid

import redis
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from coordinator.bridge.consumer import Bridge, BridgeOptions
from coordinator.bridge.containers import ContainerGauges
from coordinator.results.collector import Collector
from coordinator.services.redis_server import RedisServer
from loadgen import metrics
from loadgen.samples import ContainerSample, StatsSample, WorkerSample
from loadgen.stream import CONTAINER_SAMPLE, SampleWriter, stream_keys


def container_sample(
    oom: int = 0, restarts: int = 0, running: bool = True, cpu: float | None = 37.5
) -> ContainerSample:
    stats = None
    if cpu is not None:
        stats = StatsSample(
            time=time.monotonic(),
            container=1,
            cpu_percent=cpu,
            memory_bytes=123_456_789,
            memory_limit=1 << 30,
            memory_failcnt=0,
            pids=3,
        )
    return ContainerSample(
        target="m", time=time.monotonic(), running=running, oom_kills=oom, restarts=restarts, container=1, stats=stats
    )


def exposed(bridge: Bridge) -> dict[str, tuple[dict[str, str], float]]:
    text = generate_latest(bridge.registry).decode()
    return {
        s.name: (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("finishline_container_")
    }


def test_gauges_are_fresh_stats_only_and_counters_never_go_down() -> None:
    g = ContainerGauges(fresh_s=5.0)
    assert not g.seen
    g.add(container_sample(oom=1, restarts=2), now=100.0)
    gauges, counters = g.values(now=101.0)
    assert gauges == {"cpu_percent": 37.5, "memory_bytes": 123_456_789.0, "memory_limit": float(1 << 30)}
    assert counters == {"oom_kills": 1.0, "restarts": 2.0}
    g.add(container_sample(oom=0, restarts=0, cpu=None), now=102.0)  # a late, lower total: ignored
    assert g.values(now=103.0) == (gauges, counters)  # no new stats: the last ones, while fresh
    assert g.values(now=106.0)[0] == {}  # stale
    g.add(container_sample(oom=1, running=False, cpu=None), now=106.5)
    assert g.values(now=106.6) == ({}, counters)  # stopped: no gauges, counters stay


def test_container_samples_reach_the_bridge_and_nobody_else_is_confused(redis_server: RedisServer, tmp_path) -> None:
    run_id = f"containers-{uuid.uuid4().hex[:6]}"
    keys = stream_keys(run_id)
    client = redis.Redis.from_url(redis_server.url)
    client.hset(keys.state, mapping={"scenario": "sc", "target": "llama"})
    bridge = Bridge(BridgeOptions(run_id=run_id, redis_url=redis_server.url, block_ms=10))
    try:
        assert exposed(bridge) == {}  # no Docker target: no container series at all
        worker = WorkerSample(worker="w1", time=time.monotonic(), users=4, phase="steady", cpu_percent=10.0)
        writer = SampleWriter(client, keys.samples)
        writer.write(worker)
        sent = container_sample(oom=1, restarts=0)
        assert ContainerSample.from_json(sent.to_json()) == sent
        writer.write(sent)
        client.xadd(keys.samples, {CONTAINER_SAMPLE: b"not json"})  # skipped, not fatal
        bridge._next_second = 0.0
        bridge.poll()
        assert bridge.samples.skipped == 1
        series = exposed(bridge)
        cpu_labels, cpu = series["finishline_container_cpu_percent"]
        assert cpu == 37.5 and cpu_labels == {"run": run_id, "target": "llama"}  # labels: run and target only
        assert series["finishline_container_memory_bytes"][1] == 123_456_789
        assert series["finishline_container_memory_limit_bytes"][1] == float(1 << 30)
        assert series["finishline_container_oom_kills_total"][1] == 1.0
        assert series["finishline_container_restarts_total"][1] == 0.0
        names = {n for n in series if not n.endswith("_created")}
        assert names == set(metrics.PROM_CONTAINER_GAUGES.values()) | {
            f"{f}_total" for f in metrics.PROM_CONTAINER_COUNTERS.values()
        }
        # worker-sample readers (collector, progress, self-check) see the worker sample only
        collector = Collector(redis_server.url, run_id, tmp_path)
        collector._read_samples()
        assert collector.samples() == [worker]
    finally:
        bridge.close()
        client.close()


CONTAINER_ALERT_TESTS = """
rule_files: [alert_rules.yml]
evaluation_interval: 15s
tests:
  # run r: a container is OOM killed at minute 5; run q: none. r's memory reaches 95% of its limit.
  - interval: 15s
    input_series:
      - series: 'finishline_container_oom_kills_total{run="r",target="m",instance="b1",job="finishline-bridge"}'
        values: '0x20 1x40'
      - series: 'finishline_container_oom_kills_total{run="q",target="m",instance="b1",job="finishline-bridge"}'
        values: '0x60'
      - series: 'finishline_container_memory_bytes{run="r",target="m",instance="b1",job="finishline-bridge"}'
        values: '500x20 950x40'
      - series: 'finishline_container_memory_limit_bytes{run="r",target="m",instance="b1",job="finishline-bridge"}'
        values: '1000x60'
      - series: 'finishline_container_memory_bytes{run="q",target="m",instance="b1",job="finishline-bridge"}'
        values: '500x60'
      - series: 'finishline_container_memory_limit_bytes{run="q",target="m",instance="b1",job="finishline-bridge"}'
        values: '1000x60'
    alert_rule_test:
      - eval_time: 4m
        alertname: FinishlineContainerOomKilled
        exp_alerts: []
      - eval_time: 6m
        alertname: FinishlineContainerOomKilled
        exp_alerts:
          - exp_labels: {severity: page, run: r, target: m}
            exp_annotations: {summary: "SUMMARY_OOM", signal: "SIGNAL_OOM"}
      - eval_time: 14m
        alertname: FinishlineContainerOomKilled
        exp_alerts: []
      - eval_time: 4m
        alertname: FinishlineContainerMemoryNearLimit
        exp_alerts: []
      - eval_time: 6m
        alertname: FinishlineContainerMemoryNearLimit
        exp_alerts:
          - exp_labels: {severity: warning, run: r, target: m}
            exp_annotations: {summary: "SUMMARY_MEM", signal: "SIGNAL_MEM"}
"""


def test_container_alerts_fire_on_an_oom_kill_and_near_the_limit_only(tmp_path) -> None:
    import shutil
    import subprocess
    from pathlib import Path

    from dashboards.rules import container_alerts

    assert shutil.which("promtool"), "promtool (Debian prometheus) is needed"
    rules = Path(__file__).resolve().parents[2] / "dashboards" / "prometheus" / "alert_rules.yml"
    shutil.copy(rules, tmp_path / "alert_rules.yml")
    text = CONTAINER_ALERT_TESTS
    for alert, tag in zip(container_alerts(), ("OOM", "MEM")):
        text = text.replace(f"SUMMARY_{tag}", alert.summary).replace(f"SIGNAL_{tag}", alert.signal)
    (tmp_path / "tests.yml").write_text(text)
    result = subprocess.run(
        ["promtool", "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
