"""The Prometheus config finishline generates: every target labelled with its run and target.

That promtool accepts it, and a real prometheus scraping through it, are in
``tests/integration/test_prometheus.py``.
"""

from __future__ import annotations

from dashboards.prometheus_config import build_config
from tests.factories import prometheus_plan
from tests.paths import RULES


def test_config_labels_every_target_with_run_and_target() -> None:
    plan = prometheus_plan()
    config = build_config(plan)
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["finishline-bridge"]["static_configs"][0]["targets"] == ["127.0.0.1:9001", "127.0.0.1:9002"]
    assert jobs["finishline-bridge"]["honor_labels"] is True
    target = jobs["finishline-target"]
    assert target["metrics_path"] == "/metrics"
    assert target["static_configs"][0]["labels"] == {"run": "r1", "target": "sim", "server": "vllm"}
    assert config["rule_files"] == [str(RULES / "recording_rules.yml")]
