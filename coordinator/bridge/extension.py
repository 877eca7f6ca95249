"""Live metrics for ``finishline run``, attached through the run's extension seam.

When the scenario's ``metrics.prometheus`` is on, the run starts a bridge process
(supervised: restarted with the same consumer name if it dies) and a private Prometheus
scraping it and the target, and tears both down at the end (``ctx.own``), with the bridge's
Redis keys. At ``run_end`` (before teardown) it waits until the bridge has acknowledged
every record and Prometheus has scraped once more, so the TSDB (kept in
``{run_dir}/prometheus``) holds the final counts, and writes what Prometheus then says to
``{run_dir}/live_metrics.json`` as a cross-check of the summary. Grafana annotations are
attached whenever a Grafana URL and token are configured.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import redis

import dashboards
from coordinator.bridge.process import BridgeProcess
from coordinator.bridge.store import GROUP, delete_bridge_keys
from coordinator.periodic import Periodic
from coordinator.run.context import RunContext
from coordinator.run.events import RunEnded
from coordinator.run.targets import metrics_base
from coordinator.services.prometheus_server import PrometheusServer
from dashboards.prometheus_config import RULE_FILES, PrometheusPlan, ScrapeTarget, ServerKind, build_config
from loadgen.errors import ServiceError
from loadgen.stream.group import backlog

RULES_DIR = dashboards.PROMETHEUS_DIR
LIVE_FILE = "live_metrics.json"  # what Prometheus said at the end, beside summary.json


def server_kind(spec: Any) -> ServerKind:
    """Which metric names the target's /metrics has (see prometheus_config)."""
    kind = getattr(spec, "kind", "url")
    if kind == "simulator":
        return "simulator"
    image = str(getattr(spec, "image", "") or "")
    if kind == "docker" and "llama" in image:
        return "llamacpp"
    return "other"


def bridge_args(ctx: RunContext) -> list[str]:
    scenario = ctx.scenario
    args = ["--scenario", scenario.name, "--target", ctx.target_config.label if ctx.target_config else ""]
    slo = scenario.slo
    if slo is not None:
        for flag, value in (
            ("--slo-ttft-ms", slo.ttft_ms),
            ("--slo-tpot-ms", slo.tpot_ms),
            ("--slo-e2e-ms", slo.e2e_ms),
        ):
            if value is not None:
                args += [flag, str(value)]
        args += ["--slo-objective", str(slo.percentile / 100.0)]
    return args


class Supervisor:
    """Restarts the bridge (same consumer name and port, so its counts resume) if it dies mid-run."""

    def __init__(self, bridge: BridgeProcess, interval: float = 0.5) -> None:
        self.bridge = bridge
        self.restarts = 0
        self._watching = Periodic("finishline-bridge-supervisor", interval, self._watch)

    def start(self) -> Supervisor:
        self._watching.start()
        return self

    def _watch(self) -> None:
        proc = self.bridge.process
        if proc is not None and proc.poll() is not None and not self._watching.stopping:
            print(f"finishline: the bridge exited ({proc.returncode}); restarting it", file=sys.stderr)
            try:
                self.bridge.start()
                self.restarts += 1
            except ServiceError as exc:
                print(f"finishline: bridge restart failed: {exc}", file=sys.stderr)

    def stop(self) -> None:
        """Stop watching, then stop the bridge."""
        self._watching.stop(timeout=5)
        self.bridge.stop()


def attach(ctx: RunContext) -> None:
    """Start the bridge and Prometheus if the scenario asks; register both for teardown."""
    section = ctx.scenario.metrics
    if not section.prometheus:
        return
    ctx.own("bridge keys", lambda: _delete_keys(ctx.redis_url, ctx.run_id))  # after the bridge stops
    bridge = BridgeProcess(
        ctx.run_id,
        ctx.redis_url,
        consumer="bridge-1",
        port=section.bridge_port,
        extra_args=bridge_args(ctx),
        log_path=ctx.run_dir / "bridge.log",
    ).start()
    supervisor = Supervisor(bridge).start()
    ctx.own("bridge", supervisor.stop)
    server = None
    if section.scrape_target and ctx.target_config is not None:
        server = ScrapeTarget(base_url=metrics_base(ctx.target_config.base_url), kind=server_kind(ctx.scenario.target))
    plan = PrometheusPlan(
        run_id=ctx.run_id,
        target=ctx.target_config.label if ctx.target_config else "",
        bridges=[bridge.address],
        servers=[server] if server is not None else [],
        scrape_interval_s=1.0,
        evaluation_interval_s=1.0,
        rule_files=[str(RULES_DIR / name) for name in RULE_FILES],
    )
    prometheus = PrometheusServer(
        build_config(plan),
        port=section.prometheus_port,
        data_dir=ctx.run_dir / "prometheus",
        log_path=ctx.run_dir / "prometheus.log",
    ).start()
    ctx.own("prometheus", prometheus.stop)
    info: dict[str, Any] = {"bridge": bridge.url, "prometheus": prometheus.url, "tsdb": str(ctx.run_dir / "prometheus")}
    ctx.extras["live_metrics"] = info
    print(f"finishline: live metrics at {bridge.url}, Prometheus at {prometheus.url}", file=sys.stderr)

    def on_run_end(event: RunEnded) -> None:
        info.update(finalize(ctx, prometheus))
        info["bridge_restarts"] = supervisor.restarts
        (ctx.run_dir / LIVE_FILE).write_text(json.dumps(info, indent=2) + "\n")

    ctx.events.run_end.add_listener(on_run_end)


def finalize(ctx: RunContext, prometheus: PrometheusServer, timeout: float = 30.0) -> dict[str, Any]:
    """Wait for group ``bridge`` to ack everything and for one more scrape; return what Prometheus says."""
    client = redis.Redis.from_url(ctx.redis_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and backlog(client, ctx.keys.records, GROUP) > 0:
            time.sleep(0.1)
    finally:
        client.close()
    time.sleep(0.2)  # the bridge publishes right after the batch it acked
    prometheus.wait_scrape_after(time.time(), timeout=max(2.0, deadline - time.monotonic()))
    time.sleep(1.5)  # one more rule evaluation over the final scrape
    at = time.time()
    sel = f'{{run="{ctx.run_id}"}}'
    errors = {
        r["metric"].get("outcome", ""): int(float(r["value"][1]))
        for r in prometheus.query(f"sum by (outcome) (finishline_errors_total{sel})", at=at)
    }
    unhealthy = [
        f"{rule['name']}: {rule.get('lastError', '')}"
        for group in prometheus.rules()
        for rule in group["rules"]
        if rule.get("health") != "ok"
    ]
    return {
        "final_query_time": at,
        "prometheus_requests": int(prometheus.value(f"sum(finishline_requests_total{sel})") or 0),
        "prometheus_errors_by_class": errors,
        "unhealthy_rules": unhealthy,
    }


def _delete_keys(redis_url: str, run_id: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        delete_bridge_keys(client, run_id)
    finally:
        client.close()
