"""MUST SHOW: a real `finishline run` against the simulator with live metrics on.

Real redis-server, simulator, Locust workers, bridge and prometheus. The bridge is SIGKILLed
mid-run (the run's supervisor restarts it). Afterwards a prometheus is started on the run's
TSDB and asked, at the moment of the run's final scrape:
- total requests == the run's record count; errors by class == the summary's;
- TTFT p50 within one histogram bucket of the exact p50;
- every PromQL expression of every generated dashboard panel, every recording rule and every
  alert's signal returns data.
"""

from __future__ import annotations

import gzip
import json
import re
import signal
import subprocess
import time
from bisect import bisect_left
from pathlib import Path
from typing import Any

import psutil
import yaml

from coordinator.results.summary import read_summary
from dashboards.names import docker_only
from loadgen import metrics
from tests.factories import write_scenario
from tests.fixtures.cli import start_finishline, the_run_dir
from tests.fixtures.dashboards import panel_queries, rule_queries

SIMULATOR = {
    "faults": {"rates": {"503": 0.06, "500": 0.03, "reset": 0.03}, "retry_after_seconds": 0},
}


def scenario(tmp: Path) -> dict[str, Any]:
    return {
        "name": "live-metrics",
        "target": {"kind": "simulator", "preset": "gpu-8b", "config": str(tmp / "sim.yaml")},
        "workloads": [
            {
                "name": "chat",
                "weight": 3,
                "prompt": {"kind": "synthetic", "tokens": 150},
                "output": {"kind": "uniform", "min": 8, "max": 48},
            },
            {"name": "long", "weight": 1, "prompt": {"kind": "synthetic", "tokens": 800}, "output": 24},
        ],
        "phases": [
            {"name": "steady", "users": 8, "duration": "9s"},
            {"name": "open", "rate": 8, "arrival": {"kind": "poisson"}, "duration": "6s"},
        ],
        # 503s and resets are retried, 500s not: about 3% of requests end in an error (with every
        # fault retried, an error needed two in a row, ~1.4%, and 1 run in ~30 of ~250 had none)
        "retry": {"max_attempts": 2, "backoff_initial": 0.05, "jitter": 0.0, "retry_on_status": [503]},
        "slo": {"ttft_ms": 100, "tpot_ms": 40, "percentile": 95},
        "workers": 2,
        "output_dir": str(tmp / "runs"),
        "metrics": {"prometheus": True},
    }


def kill_bridge_once(run: subprocess.Popen[str], after_s: float, timeout: float = 60.0) -> bool:
    """SIGKILL the run's bridge process ``after_s`` seconds after it first appears."""
    deadline = time.monotonic() + timeout
    seen_at = None
    while time.monotonic() < deadline and run.poll() is None:
        try:
            children = psutil.Process(run.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return False
        for child in children:
            try:
                cmd = child.cmdline()
            except psutil.Error:
                continue
            if "bridge" in cmd and "--run-id" in cmd:
                seen_at = seen_at or time.monotonic()
                if time.monotonic() - seen_at >= after_s:
                    child.send_signal(signal.SIGKILL)
                    return True
        time.sleep(0.2)
    return False


def test_live_run_prometheus_agrees_with_the_run(tmp_path: Path, prometheus_server) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "sim.yaml").write_text(yaml.safe_dump(SIMULATOR))
    path = write_scenario(tmp_path, scenario(tmp_path))
    log = (tmp_path / "run.log").open("wb")
    run = start_finishline("run", str(path), stdout=log, stderr=subprocess.STDOUT)
    try:
        killed = kill_bridge_once(run, after_s=7.0)
        rc = run.wait(timeout=240)
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
            run.wait(timeout=60)
        log.close()
    output = (tmp_path / "run.log").read_text()
    assert rc in (0, 1), output[-3000:]  # 1: the self-check may call a loaded 2-core machine saturated
    assert killed, output[-3000:]
    run_dir = the_run_dir(tmp_path)
    summary = read_summary(run_dir / "summary.json")
    live = json.loads((run_dir / "live_metrics.json").read_text())
    run_id = summary.run.id
    with gzip.open(run_dir / "records.jsonl.gz", "rb") as fh:
        n_records = sum(1 for line in fh if line.strip())
    assert live["bridge_restarts"] >= 1
    assert live["unhealthy_rules"] == []
    # every record is live, the pre-flight request's too; the totals leave that one out
    assert summary.all.count == n_records - summary.phases["preflight"].count > 50
    assert summary.all.errors_by_class, "the faults should have produced errors"
    assert summary.all.retries > 0

    prom = prometheus_server(
        {"global": {"scrape_interval": "1m"}, "scrape_configs": []}, data_dir=run_dir / "prometheus"
    )
    at = live["final_query_time"]
    sel = f'{{run="{run_id}"}}'
    assert prom.query(f"sum(finishline_requests_total{sel})", at=at)[0]["value"][1] == str(n_records)
    errors = {
        r["metric"]["outcome"]: int(float(r["value"][1]))
        for r in prom.query(f"sum by (outcome) (finishline_errors_total{sel})", at=at)
    }
    assert errors == summary.all.errors_by_class
    assert live["prometheus_requests"] == n_records
    assert live["prometheus_errors_by_class"] == summary.all.errors_by_class
    attempts = float(prom.query(f"sum(finishline_attempts_total{sel})", at=at)[0]["value"][1])
    assert attempts == summary.all.attempts + summary.phases["preflight"].attempts

    # TTFT p50: Prometheus' estimate lies within one bucket of the exact value
    assert summary.all.latency_ms.ttft.p50 is not None
    exact = summary.all.latency_ms.ttft.p50 / 1000.0
    est = float(
        prom.query(
            f'histogram_quantile(0.5, sum by (le) (finishline_ttft_seconds_bucket{{run="{run_id}", outcome="ok"}}))',
            at=at,
        )[0]["value"][1]
    )
    buckets = metrics.REQUEST_BUCKETS
    assert abs(bisect_left(buckets, est) - bisect_left(buckets, exact)) <= 1, (est, exact)

    # every expression of every dashboard panel, recording rule and alert signal has data
    # (container series exist only in Docker runs: tests/integration/test_docker_live_metrics.py)
    queries = [(where, expr) for where, expr in panel_queries(run_id) + rule_queries() if not docker_only(expr)]

    # The load gauges (users, rates, client CPU) describe workers that are running: once they have
    # quit, the bridge stops exposing them, so at the final scrape of a slow teardown they may be
    # gone. A panel has data when its expression had data at some moment of the run.
    def has_data(expr: str) -> bool:
        return bool(prom.query(expr, at=at) or prom.query(f"last_over_time(({expr})[5m:1s])", at=at))

    empty = [f"{where}: {expr}" for where, expr in queries if not has_data(expr)]
    assert len(queries) > 60
    assert not empty, "\n".join(empty)
    # recorded series were written live during the run (not only computable afterwards)
    assert prom.query(f"run:finishline_ttft_seconds:p50_1m{sel}", at=at)
    assert re.search(r"live metrics at http://127\.0\.0\.1:\d+/metrics", output)
