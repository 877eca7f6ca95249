"""Prometheus config, server and rules: promtool checks, alert unit tests, a real scrape.

What the generated config says (labels, jobs) is checked without Prometheus in
``tests/unit/test_prometheus_config.py``; here promtool and a real prometheus judge it.
"""

from __future__ import annotations

import random
import shutil
import textwrap
import time
from bisect import bisect_left
from pathlib import Path

import redis
import yaml
from prometheus_client import start_http_server

from coordinator.bridge.consumer import Bridge, BridgeOptions
from coordinator.services.redis_server import RedisServer
from dashboards import names as n
from dashboards.prometheus_config import PrometheusPlan, build_config, write_config
from dashboards.rules import alerts
from loadgen import metrics
from loadgen.samples import WorkerSample
from loadgen.stream.keys import stream_keys
from loadgen.stream.samples import SampleWriter
from tests.factories import prometheus_plan, random_record
from tests.fixtures.services import promtool, write_records
from tests.fixtures.waiting import wait_for
from tests.paths import RULES


def test_a_generated_config_passes_promtool_check(tmp_path: Path) -> None:
    plan = prometheus_plan()
    path = write_config(plan, tmp_path / "prometheus.yml")
    result = promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", str(RULES / "recording_rules.yml"), str(RULES / "alert_rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_template_passes_promtool_check() -> None:
    result = promtool("check", "config", str(RULES / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


ALERT_TESTS = """
rule_files: [recording_rules.yml, alert_rules.yml]
evaluation_interval: 15s
tests:
  # 10% of requests fail from minute 10 on, after 10 quiet minutes: a spike, then an error ratio
  # that stays high stops being a spike once the 15m ratio catches up
  - interval: 15s
    input_series:
      - series: 'finishline_requests_total{run="r",scenario="s",target="t",phase="p",workload="w",outcome="ok"}'
        values: '0+150x40 6000+135x80'
      - series: 'finishline_errors_total{run="r",scenario="s",target="t",phase="p",workload="w",outcome="http_5xx"}'
        values: '0+0x40 0+15x80'
      - series: 'finishline_requests_total{run="r",scenario="s",target="t",phase="p",workload="w",outcome="http_5xx"}'
        values: '0+0x40 0+15x80'
    alert_rule_test:
      - eval_time: 9m
        alertname: FinishlineErrorRateSpike
        exp_alerts: []
      - eval_time: 13m
        alertname: FinishlineErrorRateSpike
        exp_alerts:
          - exp_labels: {severity: warning, run: r, scenario: s, target: t, phase: p}
            exp_annotations:
              summary: "More than 5% of requests fail, at least twice the 15-minute error ratio."
              signal: "run:finishline_error_ratio:rate1m"
      - eval_time: 29m
        alertname: FinishlineErrorRateSpike
        exp_alerts: []
  # goodput 50% against a 99% objective burns 50x: fires; 100% good: silent
  - interval: 15s
    input_series:
      - series: 'finishline_requests_total{run="r",scenario="s",target="t",phase="p",workload="w",outcome="ok"}'
        values: '0+100x300'
      - series: 'finishline_good_requests_total{run="r",scenario="s",target="t",phase="p",workload="w",outcome="ok"}'
        values: '0+50x300'
      - series: 'finishline_slo_objective{run="r",scenario="s",target="t"}'
        values: '0.99x300'
      - series: 'finishline_requests_total{run="q",scenario="s",target="t",phase="p",workload="w",outcome="ok"}'
        values: '0+100x300'
      - series: 'finishline_good_requests_total{run="q",scenario="s",target="t",phase="p",workload="w",outcome="ok"}'
        values: '0+100x300'
      - series: 'finishline_slo_objective{run="q",scenario="s",target="t"}'
        values: '0.99x300'
    alert_rule_test:
      - eval_time: 30m
        alertname: FinishlineSloBurnFast
        exp_alerts:
          - exp_labels: {severity: page, run: r, scenario: s, target: t, phase: p}
            exp_annotations:
              summary: "Requests miss the SLO 14.4x faster than the objective allows (5m and 1h windows)."
              signal: "run:finishline_slo_burn:rate5m"
  # a worker at 95% CPU saturates the client; 40% does not
  - interval: 15s
    input_series:
      - series: 'finishline_client_cpu_percent{run="r",scenario="s",target="t",phase="p",instance="b1"}'
        values: '95x20'
      - series: 'finishline_client_loop_lag_seconds{run="r",scenario="s",target="t",phase="p",instance="b1"}'
        values: '0.001x20'
      - series: 'finishline_client_cpu_percent{run="q",scenario="s",target="t",phase="p",instance="b1"}'
        values: '40x20'
      - series: 'finishline_client_loop_lag_seconds{run="q",scenario="s",target="t",phase="p",instance="b1"}'
        values: '0.001x20'
    alert_rule_test:
      - eval_time: 2m
        alertname: FinishlineClientSaturated
        exp_alerts:
          - exp_labels: {severity: warning, run: r, scenario: s, target: t, phase: p}
            exp_annotations:
              summary: "The load generator itself is saturated: latencies measure the client, not the server."
              signal: '{signal}'
"""


def test_alerts_fire_when_they_should_and_only_then(tmp_path: Path) -> None:
    for name in ("recording_rules.yml", "alert_rules.yml"):
        shutil.copy(RULES / name, tmp_path / name)
    saturation = next(a.signal for a in alerts() if a.name == "FinishlineClientSaturated")
    (tmp_path / "tests.yml").write_text(
        textwrap.dedent(ALERT_TESTS).replace(
            "'{signal}'", yaml.safe_dump(saturation, width=10_000).strip().removesuffix("...").strip()
        )
    )
    result = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_bridges_sum_correctly_in_promql(redis_server: RedisServer, prometheus_server) -> None:  # type: ignore[no-untyped-def]
    """Two bridges share the stream; a real prometheus scrapes both; sums and quantiles are the run's."""
    client = redis.Redis.from_url(redis_server.url)
    rng = random.Random(9)
    records = [random_record(rng, run_id="bridge-test") for _ in range(600)]
    write_records(client, "bridge-test", records)
    samples = SampleWriter(client, stream_keys("bridge-test").samples)
    for worker, users in (("w1", 3), ("w2", 5)):  # two workers' latest samples
        samples.write(
            WorkerSample(
                worker=worker,
                time=time.monotonic(),
                users=users,
                target_rate=2.0,
                achieved_rate=1.5,
                phase="steady",
                cpu_percent=10.0,
                loop_lag_ms=1.0,
            )
        )
    opts = {
        "run_id": "bridge-test",
        "redis_url": redis_server.url,
        "scenario": "s",
        "target": "sim",
        "block_ms": 10,
        "batch": 50,
    }
    bridges = [Bridge(BridgeOptions(consumer=f"bridge-{i}", **opts)) for i in (1, 2)]
    for _ in range(12):
        for b in bridges:
            b.poll()
    for b in bridges:
        b.chores(time.monotonic())  # read samples and settle the gauge lease now
        b.poll()  # and expose what the chores found
    shares = [sum(v for k, v in b.aggregate.items() if k.startswith("c\x1frequests")) for b in bridges]
    assert all(x > 0 for x in shares) and sum(shares) == 600
    assert sum(b.lease.held for b in bridges) == 1
    servers = [start_http_server(0, addr="127.0.0.1", registry=b.registry)[0] for b in bridges]
    try:
        plan = PrometheusPlan(
            run_id="bridge-test",
            target="sim",
            bridges=[f"127.0.0.1:{s.server_address[1]}" for s in servers],
            scrape_interval_s=0.5,
            evaluation_interval_s=0.5,
            rule_files=[str(RULES / "recording_rules.yml"), str(RULES / "alert_rules.yml")],
        )
        prom = prometheus_server(build_config(plan))
        prom.wait_targets_up()
        wait_for(
            lambda: prom.value("count(up{job='finishline-bridge'} == 1)") == 2,
            timeout=20,
            what="prometheus to scrape both bridges",
            interval=0.2,
        )
        assert prom.value(f"count(count by (instance) ({n.COUNTER['requests']}))") == 2
        assert prom.value(f"sum({n.COUNTER['requests']})") == 600
        assert prom.value(f"sum({n.COUNTER['attempts']})") == sum(len(r.attempts) for r in records)
        ok_ttft = sorted(metrics.ttft(r.final) for r in records if r.ok)
        assert prom.value(f'sum({n.HIST["ttft"]}_count{{outcome="ok"}})') == len(ok_ttft)
        p50 = prom.value(f'histogram_quantile(0.5, sum by (le) ({n.HIST["ttft"]}_bucket{{outcome="ok"}}))')
        exact = ok_ttft[len(ok_ttft) // 2]
        assert abs(bisect_left(metrics.REQUEST_BUCKETS, p50) - bisect_left(metrics.REQUEST_BUCKETS, exact)) <= 1
        assert prom.value(f"sum({n.GAUGE['users']})") == 8  # exposed by the lease holder only
        assert prom.value(f"sum({n.GAUGE['target_rate']})") == 4.0
        groups = prom.rules()
        assert {g["name"] for g in groups} == {"finishline-recording", "finishline-alerts"}
        bad = [r["name"] for g in groups for r in g["rules"] if r.get("health") not in ("ok", "unknown")]
        assert not bad
    finally:
        for server in servers:
            server.shutdown()
        for b in bridges:
            b.close()
