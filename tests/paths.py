"""Where the tests find the project's files: the repository root and the tests' own data."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository: examples/, docs/, dashboards/, ...
DATA = ROOT / "tests" / "data"  # files written by real runs, kept as they were
RULES = ROOT / "dashboards" / "prometheus"  # the Prometheus rules and configs finishline ships
