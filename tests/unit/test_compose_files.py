"""The files compose.yaml's stack runs, read without Docker: the coordinator's scenario and
what the stack's Prometheus scrapes. ``tests/integration/test_compose.py`` has Compose itself
resolve compose.yaml; promtool checks the rules in ``tests/integration/test_prometheus.py``."""

from __future__ import annotations

from pathlib import Path

import yaml

from coordinator.scenario.loader import validate_file
from tests.paths import ROOT, RULES


def test_prometheus_scrapes_the_stack_with_the_projects_rules() -> None:
    config = yaml.safe_load((RULES / "compose-prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {"127.0.0.1:9464", "127.0.0.1:8080", "127.0.0.1:8000"}
    rule_files = [Path(p).name for p in config["rule_files"]]  # mounted from dashboards/prometheus/
    assert rule_files == ["recording_rules.yml", "alert_rules.yml"]
    assert all((RULES / name).exists() for name in rule_files)


def test_the_compose_scenario_is_valid() -> None:
    scenario, problems = validate_file(ROOT / "targets/images/compose/scenario.yaml")
    assert problems == [] and scenario is not None
    assert scenario.target.base_url == "http://127.0.0.1:8080/v1"  # the compose model service
