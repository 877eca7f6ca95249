"""The Prometheus configuration a run writes: its bridge(s) and the target's own ``/metrics``.

Every series a run scrapes carries ``run`` and ``target`` labels (set on the scrape targets),
so a shared Prometheus keeps runs apart and the dashboards can put the server's queue next
to the client's latency. The target's kind only documents which names to expect: vLLM
``vllm:*``, llama.cpp ``llamacpp:*``, TGI ``tgi_*``, the simulator ``simulator_*``; the
recording rules in ``dashboards/prometheus/`` map them onto common names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field

ServerKind = Literal["vllm", "llamacpp", "tgi", "simulator", "other"]


class ScrapeTarget(BaseModel):
    """The endpoint's own metrics: ``base_url`` like ``http://127.0.0.1:8000`` (path ``/metrics``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(pattern=r"^https?://")
    kind: ServerKind = "other"
    metrics_path: str = "/metrics"


class PrometheusPlan(BaseModel):
    """Everything needed to write one prometheus.yml for one run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(min_length=1)
    target: str = ""  # the target's label (scenario target name)
    bridges: list[str] = Field(default_factory=list)  # host:port of each bridge's /metrics
    server: ScrapeTarget | None = None
    scrape_interval_s: float = Field(default=5.0, gt=0)
    evaluation_interval_s: float = Field(default=5.0, gt=0)
    rule_files: list[str] = Field(default_factory=list)


def _dur(seconds: float) -> str:
    return f"{int(round(seconds * 1000))}ms"


def build_config(plan: PrometheusPlan) -> dict[str, Any]:
    """The configuration as a dict (what ``prometheus.yml`` holds)."""
    labels = {"run": plan.run_id, "target": plan.target}
    jobs: list[dict[str, Any]] = []
    if plan.bridges:
        jobs.append(
            {
                "job_name": "finishline-bridge",
                "honor_labels": True,  # the bridge's run/target labels are the truth
                "static_configs": [{"targets": list(plan.bridges), "labels": labels}],
            }
        )
    if plan.server is not None:
        parts = urlsplit(plan.server.base_url)
        jobs.append(
            {
                "job_name": "finishline-target",
                "scheme": parts.scheme,
                "metrics_path": (parts.path.rstrip("/") + plan.server.metrics_path) or "/metrics",
                "static_configs": [{"targets": [parts.netloc], "labels": {**labels, "server": plan.server.kind}}],
            }
        )
    return {
        "global": {
            "scrape_interval": _dur(plan.scrape_interval_s),
            "evaluation_interval": _dur(plan.evaluation_interval_s),
        },
        "rule_files": list(plan.rule_files),
        "scrape_configs": jobs,
    }


def write_config(plan: PrometheusPlan, path: Path) -> Path:
    path.write_text(yaml.safe_dump(build_config(plan), sort_keys=False))
    return path
