"""Container stats live: Docker target -> samples stream -> bridge -> Prometheus -> dashboard.

- A real ``finishline run`` with a Docker target (the simulator image: cheap), a cold start
  (so the run has two containers) and ``metrics: {prometheus: true}``: Prometheus' container
  series exist, every value it holds is one of the run directory's stats samples, the
  limits and counters agree with ``container.json``, and every dashboard panel and alert
  signal over container series returns data (``tests/integration/test_bridge_live.py`` skips those).
- An OOM kill of a container that was ready reaches the bridge's counter within seconds.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from coordinator.bridge.consumer import Bridge, BridgeOptions
from coordinator.docker.engine import leftover_containers
from coordinator.docker.images import BASE_IMAGE, SIMULATOR_IMAGE, ensure_image
from coordinator.docker.lifecycle import DockerTarget
from coordinator.docker.live import ContainerPublisher
from coordinator.docker.spec import DockerTargetSpec, HealthSpec
from dashboards.names import docker_only
from loadgen import metrics
from loadgen.stream.keys import stream_keys
from tests.factories import write_scenario
from tests.fixtures.cli import finishline, the_run_dir
from tests.fixtures.dashboards import panel_queries, rule_queries
from tests.fixtures.services import exposed_series
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.docker

MEMORY = 384 * 1024 * 1024


@pytest.fixture(scope="module")
def images(docker_engine) -> None:  # type: ignore[no-untyped-def]
    for image in (BASE_IMAGE, SIMULATOR_IMAGE):
        ensure_image(docker_engine, image)  # cached: built only when missing


def scenario(tmp: Path) -> dict[str, Any]:
    return {
        "name": "docker-live",
        "target": {
            "kind": "docker",
            "name": "sim",
            "image": SIMULATOR_IMAGE,
            "model": "finishline-sim",  # what the simulator image serves (the pre-flight check asks)
            "command": ["--preset", "gpu-8b"],
            "cpus": 1.0,
            "memory": MEMORY,
            "readiness_timeout_s": 60,
            "stop_timeout_s": 1,
            "stats_interval_s": 0.5,
        },
        "workloads": [{"name": "chat", "prompt": {"kind": "synthetic", "tokens": 64}, "output": 16}],
        "phases": [
            {"name": "cold_start", "kind": "cold_start", "starts": 1, "warm_requests": 2, "max_tokens": 8},
            {"name": "steady", "users": 4, "duration": "8s"},
        ],
        "workers": 1,
        "output_dir": str(tmp / "runs"),
        "metrics": {"prometheus": True},
    }


def values(result: list[dict[str, Any]]) -> list[float]:
    return [float(v) for series in result for _, v in series["values"]]


def test_docker_run_container_series_agree_with_the_stats_file(  # type: ignore[no-untyped-def]
    docker_clean, images, tmp_path: Path, prometheus_server
) -> None:
    proc = finishline("run", str(write_scenario(tmp_path, scenario(tmp_path))), timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), output[-3000:]  # 1: the self-check may call a loaded 2-core machine saturated
    run_dir = the_run_dir(tmp_path)
    run_id = run_dir.name
    assert leftover_containers(docker_clean, run_id) == []
    live = json.loads((run_dir / "live_metrics.json").read_text())
    assert live["unhealthy_rules"] == []
    containers = json.loads((run_dir / "container.json").read_text())
    assert len(containers) == 2  # the first start, then the cold start's fresh container
    stats = [json.loads(line) for line in (run_dir / "container_stats.jsonl").read_text().splitlines()]
    assert stats

    prom = prometheus_server(
        {"global": {"scrape_interval": "1m"}, "scrape_configs": []}, data_dir=run_dir / "prometheus"
    )
    at = live["final_query_time"]
    sel = f'{{run="{run_id}", target="sim"}}'
    # every sample Prometheus scraped (raw, through a range selector) is one the sampler wrote
    for name, key in (
        ("cpu_percent", "cpu_percent"),
        ("memory_bytes", "memory_bytes"),
        ("memory_limit", "memory_limit"),
    ):
        family = metrics.PROM_CONTAINER_GAUGES[name]
        seen = values(prom.query(f"{family}{sel}[10m]", at=at))
        assert len(seen) >= 5, (family, seen)
        assert set(seen) <= {float(s[key]) for s in stats}, family
    assert float(prom.query(f"{metrics.PROM_CONTAINER_GAUGES['memory_limit']}{sel}", at=at)[0]["value"][1]) == MEMORY
    assert {c["limits"]["memory"] for c in containers} == {MEMORY}
    # counters: the run's totals, as container.json has them
    oom = prom.query(f"{metrics.PROM_CONTAINER_COUNTERS['oom_kills']}_total{sel}", at=at)
    restarts = prom.query(f"{metrics.PROM_CONTAINER_COUNTERS['restarts']}_total{sel}", at=at)
    assert float(oom[0]["value"][1]) == sum(c["oom_killed"] for c in containers) == 0
    assert float(restarts[0]["value"][1]) == sum(c["restarts"] for c in containers) == 0
    # labels stay bounded: run and target only
    assert set(prom.query(f"{metrics.PROM_CONTAINER_GAUGES['cpu_percent']}{sel}", at=at)[0]["metric"]) <= {
        "__name__",
        "run",
        "target",
        "instance",
        "job",
    }

    # the container panels, rules and alert signals have data in a Docker run
    queries = [(where, expr) for where, expr in panel_queries(run_id) + rule_queries() if docker_only(expr)]
    empty = [f"{where}: {expr}" for where, expr in queries if not prom.query(expr, at=at)]
    assert len(queries) >= 5
    assert not empty, "\n".join(empty)


def _exposed(bridge: Bridge) -> dict[str, float]:
    return {name: value for name, (_, value) in exposed_series(bridge.registry, "finishline_container_").items()}


def test_an_oom_kill_after_ready_reaches_the_bridge(docker_clean, images, redis_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # ready at once; 3 s later the main process becomes a hog far over the 64 MiB limit
    script = (
        "python3 -m http.server {port} --bind 127.0.0.1 & sleep 3; "
        "exec python3 -c 'x = bytearray(256 * 1024 * 1024); import time; time.sleep(60)'"
    )
    spec = DockerTargetSpec(
        name="hog",
        image=BASE_IMAGE,
        entrypoint=["sh", "-c"],
        command=[script],
        memory="64m",
        health=HealthSpec(endpoint="/"),
        readiness_timeout_s=20,
        stop_timeout_s=1,
        stats_interval_s=0.5,
    )
    run_id = f"t-live-{uuid.uuid4().hex[:8]}"
    bridge = Bridge(BridgeOptions(run_id=run_id, redis_url=redis_server.url, target="hog", trim_require=()))
    with DockerTarget(spec, run_id, tmp_path, docker_clean) as target:
        target.start_container()
        publisher = ContainerPublisher(target, redis_server.url, stream_keys(run_id).samples).start()
        try:
            seen: dict[str, float] = {}
            running_seen = False

            def oom_counted() -> bool:
                nonlocal seen, running_seen
                bridge.poll()
                seen = _exposed(bridge)
                running_seen |= "finishline_container_memory_bytes" in seen
                return seen.get("finishline_container_oom_kills_total") == 1.0

            wait_for(
                oom_counted, timeout=25, what=lambda: f"the OOM kill in the bridge's counters: {seen}", interval=0.1
            )
        finally:
            publisher.stop()
            bridge.close()
        assert publisher.published > 0
    assert leftover_containers(docker_clean, run_id) == []
    assert running_seen, "gauges were exposed while the container ran"
    assert seen.get("finishline_container_oom_kills_total") == 1.0, seen
    assert seen.get("finishline_container_restarts_total") == 0.0
    # a dead container has no current CPU or memory: its gauges are gone, the counters stay
    assert "finishline_container_memory_bytes" not in seen
    summary = json.loads((tmp_path / "container.json").read_text())
    assert summary[0]["oom_killed"] is True
