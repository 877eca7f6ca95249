"""Grafana dashboards as code, Prometheus configuration and rules (generated files live beside the code)."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
DASHBOARD_DIR = HERE / "json"  # generated dashboards, one JSON file each
PROMETHEUS_DIR = HERE / "prometheus"  # generated rule files and the prometheus.yml template
PROVISIONING_DIR = HERE / "provisioning"
