"""Every ``prometheus.yml`` finishline has comes from here: a run's own, the compose stack's, the template.

Every series a run scrapes carries ``run`` and ``target`` labels (set on the scrape targets),
so a shared Prometheus keeps runs apart and the dashboards can put the server's queue next
to the client's latency. The target's kind only documents which names to expect: vLLM
``vllm:*``, llama.cpp ``llamacpp:*``, TGI ``tgi_*``, the simulator ``simulator_*``; the
recording rules in ``dashboards/prometheus/`` map them onto common names.

- :func:`build_config` of a :class:`PrometheusPlan`: what ``finishline run`` writes for a run
  (its bridge ports and the target's ``/metrics``), and the basis of the two files below;
- :func:`template_plan`: ``dashboards/prometheus/prometheus.yml``, for a Prometheus you run;
- :func:`compose_plan`: ``dashboards/prometheus/compose-prometheus.yml``, mounted by compose.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field

ServerKind = Literal["vllm", "llamacpp", "tgi", "simulator", "other"]
RULE_FILES = ("recording_rules.yml", "alert_rules.yml")


class ScrapeTarget(BaseModel):
    """The endpoint's own metrics: ``base_url`` like ``http://127.0.0.1:8000`` (path ``/metrics``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(pattern=r"^https?://")
    kind: ServerKind = "other"
    metrics_path: str = "/metrics"
    target: str | None = None  # its ``target`` label when the plan has none for the whole run


class PrometheusPlan(BaseModel):
    """Everything needed to write one prometheus.yml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str | None = Field(default=None, min_length=1)  # None: the bridge's own run label is kept
    target: str = ""  # the target's label (scenario target name)
    bridges: list[str] = Field(default_factory=list)  # host:port of each bridge's /metrics
    servers: list[ScrapeTarget] = Field(default_factory=list)
    scrape_interval_s: float = Field(default=5.0, gt=0)
    evaluation_interval_s: float = Field(default=5.0, gt=0)
    rule_files: list[str] = Field(default_factory=list)


def _dur(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def build_config(plan: PrometheusPlan) -> dict[str, Any]:
    """The configuration as a dict (what ``prometheus.yml`` holds)."""
    labels = {} if plan.run_id is None else {"run": plan.run_id, "target": plan.target}
    jobs: list[dict[str, Any]] = []
    if plan.bridges:
        bridge: dict[str, Any] = {"targets": list(plan.bridges)}
        if labels:
            bridge["labels"] = labels
        jobs.append(
            {
                "job_name": "finishline-bridge",
                "honor_labels": True,  # the bridge's run/target labels are the truth
                "static_configs": [bridge],
            }
        )
    if plan.servers:
        first = urlsplit(plan.servers[0].base_url)
        jobs.append(
            {
                "job_name": "finishline-target",
                "scheme": first.scheme,
                "metrics_path": (first.path.rstrip("/") + plan.servers[0].metrics_path) or "/metrics",
                "static_configs": [
                    {
                        "targets": [urlsplit(server.base_url).netloc],
                        "labels": {
                            **labels,
                            **({"target": server.target} if server.target else {}),
                            "server": server.kind,
                        },
                    }
                    for server in plan.servers
                ],
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


def render(plan: PrometheusPlan, header: str = "") -> str:
    """``prometheus.yml`` text, with ``header`` (comment lines) first."""
    return header + yaml.safe_dump(build_config(plan), sort_keys=False)


def write_config(plan: PrometheusPlan, path: Path) -> Path:
    path.write_text(render(plan))
    return path


def template_plan() -> PrometheusPlan:
    """A Prometheus you run yourself: replace RUN_ID, TARGET and the two addresses."""
    return PrometheusPlan(
        run_id="RUN_ID",
        target="TARGET",
        bridges=["127.0.0.1:9464"],  # every `finishline bridge --port` of the run
        servers=[ScrapeTarget(base_url="http://127.0.0.1:8000", kind="vllm")],
        rule_files=list(RULE_FILES),
    )


def compose_plan() -> PrometheusPlan:
    """compose.yaml's stack: host networking, so these are its fixed loopback ports
    (bridge 9464, llama.cpp 8080, simulator 8000); the rules are mounted beside the file."""
    return PrometheusPlan(
        bridges=["127.0.0.1:9464"],
        servers=[
            ScrapeTarget(base_url="http://127.0.0.1:8080", kind="llamacpp", target="model"),
            ScrapeTarget(base_url="http://127.0.0.1:8000", kind="simulator", target="simulator"),
        ],
        rule_files=[f"/etc/prometheus/rules/{name}" for name in RULE_FILES],
    )
