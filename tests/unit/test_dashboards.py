"""Dashboards as code: generated JSON is committed and current, well formed, and names only real series.

That every panel's PromQL returns data against a real run is shown by
``tests/integration/test_bridge_live.py``; here, fast checks that need no services.
"""

from __future__ import annotations

import re

import yaml

from dashboards import build, rules
from dashboards import names as n
from loadgen import metrics
from tests.fixtures.dashboards import DASHBOARDS, board, panels, rule_queries


def known_series() -> set[str]:
    names = set(n.COUNTER.values()) | set(n.GAUGE.values()) | {n.BRIDGE_BACKLOG, n.BRIDGE_APPLIED}
    for family in n.HIST.values():
        names |= {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
    names |= {r["record"] for r in rules.recording_rules()}
    names |= set(n.CONTAINER_GAUGE.values()) | set(n.CONTAINER_COUNTER.values())  # Docker targets
    return names


def test_committed_files_are_current() -> None:
    assert build.main(["--check"]) == 0, "run `python -m dashboards.build` and commit the result"


def test_dashboards_are_well_formed() -> None:
    uids = set()
    for name in build.DASHBOARDS:
        dashboard = board(name)
        assert dashboard["uid"] not in uids
        uids.add(dashboard["uid"])
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert "run" in variables
        assert dashboard["annotations"]["list"][0]["target"]["tags"] == ["finishline"]
        drawn = [p for p in panels(dashboard) if p["type"] != "row"]
        assert len(drawn) >= 6
        cells: set[tuple[int, int]] = set()
        for panel in drawn:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, f"{name}: {panel['title']} overlaps another panel"
                    cells.add((x, y))
            if panel["type"] == "text":  # queries nothing: says where to find what Prometheus cannot hold
                assert panel["options"]["content"].strip(), panel["title"]
                continue
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
                assert target["expr"].strip()


def test_every_queried_series_exists() -> None:
    """Each finishline/recorded name a panel or rule uses is exposed by the bridge or recorded."""
    known = known_series()
    exprs = [t["expr"] for name in build.DASHBOARDS for p in panels(board(name)) for t in p.get("targets", []) or []]
    for file_name in ("recording_rules.yml", "alert_rules.yml"):
        for group in yaml.safe_load((DASHBOARDS / "prometheus" / file_name).read_text())["groups"]:
            exprs += [r["expr"] for r in group["rules"]]
    exprs += [expr for _, expr in rule_queries()]  # the alerts' signals too
    used = set()
    for expr in exprs:
        used |= set(
            re.findall(r"(?<![:\w])((?:run|run_outcome|server):[a-z_]+(?::[a-z0-9_]+)?|finishline_[a-z_]+)\b", expr)
        )
    unknown = sorted(u for u in used if u not in known)
    assert not unknown, unknown
    # every latency the bridge exposes is on the live dashboard
    live = (DASHBOARDS / "json" / "live-run.json").read_text()
    for name in ("ttft", "tpot", "e2e", "itl", "dispatch_delay"):
        assert n.quantile(name, "p99") in live or metrics.PROM_HISTOGRAMS[name][0] in live


def test_provisioning_points_at_the_datasource_and_dashboards() -> None:
    ds = yaml.safe_load((DASHBOARDS / "provisioning" / "datasources" / "finishline.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    assert ds["datasources"][0]["uid"] == build.DATASOURCE_UID
    prov = yaml.safe_load((DASHBOARDS / "provisioning" / "dashboards" / "finishline.yml").read_text())
    assert prov["providers"][0]["type"] == "file"
