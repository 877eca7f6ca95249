"""Container samples in the samples stream -> the bridge's ``finishline_container_*`` series
(real redis-server), and the container alerts (promtool).

The Docker side (a real container, an OOM kill, a whole run into Prometheus) is in
``tests/integration/test_docker_live_metrics.py``; the gauges' rules in ``tests/unit/test_bridge.py``;
here the stream seam and the exposition rules.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import redis

from coordinator.bridge.consumer import Bridge, BridgeOptions
from coordinator.results.collector import Collector
from coordinator.services.redis_server import RedisServer
from dashboards.rules import container_alerts
from loadgen import metrics
from loadgen.samples import ContainerSample, WorkerSample
from loadgen.stream.keys import CONTAINER_SAMPLE, stream_keys
from loadgen.stream.samples import SampleWriter
from tests.factories import container_sample
from tests.fixtures.services import exposed_series, promtool
from tests.paths import RULES


def exposed(bridge: Bridge) -> dict[str, tuple[dict[str, str], float]]:
    return exposed_series(bridge.registry, "finishline_container_")


def test_container_samples_reach_the_bridge_and_nobody_else_is_confused(
    redis_server: RedisServer, tmp_path: Path
) -> None:
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
        bridge.poll()  # the first poll reads the samples stream
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
        collector.poll(block_ms=1)
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


def test_container_alerts_fire_on_an_oom_kill_and_near_the_limit_only(tmp_path: Path) -> None:
    shutil.copy(RULES / "alert_rules.yml", tmp_path / "alert_rules.yml")
    text = CONTAINER_ALERT_TESTS
    for alert, tag in zip(container_alerts(), ("OOM", "MEM"), strict=True):
        text = text.replace(f"SUMMARY_{tag}", alert.summary).replace(f"SIGNAL_{tag}", alert.signal)
    (tmp_path / "tests.yml").write_text(text)
    result = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
