"""summary.json is a promise: real version-1 files load, round-trip, flatten and render as when written.

tests/data/summary-v1.json (warm-up, two workloads, SLOs missed, faults and a retry) and
summary-v1-partial.json (no SLO, interrupted) were written by real runs before the summary
became a typed model; summary-v1.csv is the CSV the first one gave then.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from coordinator.cli import cli
from coordinator.results.report_tables import results_table
from coordinator.results.schema import schema_json
from coordinator.results.status import RunStatus
from coordinator.results.summarize import summarize
from coordinator.results.summary import (
    LatencyByMetric,
    LatencyStats,
    Summary,
    percentile_field,
    read_summary,
)
from coordinator.results.table import write_csv
from loadgen import metrics
from loadgen.errors import UserError
from tests.factories import record
from tests.paths import DATA, ROOT

V1 = ("summary-v1.json", "summary-v1-partial.json")


@pytest.mark.parametrize("name", V1)
def test_version_1_files_load_and_round_trip(name: str) -> None:
    raw = (DATA / name).read_text()
    summary = Summary.model_validate_json(raw)
    assert summary.version == 1
    assert json.loads(summary.model_dump_json()) == json.loads(raw)  # every key, every value, nothing added
    assert Summary.model_validate_json(summary.model_dump_json()) == summary


def test_a_version_1_file_reads_as_typed_values() -> None:
    s = read_summary(DATA / "summary-v1.json")
    assert s.status == RunStatus.COMPLETE and not s.partial and s.valid
    assert s.unmeasured_phases == ("warmup",) and s.phases_order == ("warmup", "steady", "poisson")
    assert s.all.count == sum(s.phases[p].count for p in ("steady", "poisson"))
    assert s.all.count + s.phases["warmup"].count == s.run.records
    assert s.all.errors_by_class and s.all.retries > 0
    assert s.slo is not None and s.slo.rule() == metrics.SloRule(ttft=0.1, tpot=0.015, e2e=0.6)
    assert s.all.slo is not None and set(s.all.slo.checks) == {"ttft", "tpot", "e2e"}
    ttft = s.all.latency_ms.ttft
    assert ttft.p50 is not None and ttft.p99_9 is not None and ttft.p50 <= ttft.p99_9
    assert ttft.at(99.9) == ttft.p99_9 and ttft.at(50) == ttft.p50
    assert [w.name for w in s.run.phases] == list(s.phases_order)
    assert s.selfcheck is not None and all(w.samples > 0 for w in s.selfcheck.workers.values())
    partial = read_summary(DATA / "summary-v1-partial.json")
    assert partial.status == RunStatus.PARTIAL and partial.partial_reason == "interrupted (SIGINT)"
    assert partial.slo is None and partial.all.slo is None


def test_the_csv_of_a_version_1_summary_is_what_it_was(tmp_path: Path) -> None:
    write_csv(read_summary(DATA / "summary-v1.json"), tmp_path / "summary.csv")
    assert (tmp_path / "summary.csv").read_text() == (DATA / "summary-v1.csv").read_text()
    rows = list(csv.reader((tmp_path / "summary.csv").open()))
    assert "ttft_p99.9_ms" in rows[0]


def test_the_report_shows_a_version_1_summary() -> None:
    s = read_summary(DATA / "summary-v1.json")
    table = results_table(s)
    assert "warmup (warm-up)" in table and "whole run, no warm-up" in table
    assert f"{s.all.latency_ms.ttft.p50:,.1f}" in table


def test_what_summarize_writes_is_what_loads() -> None:
    records = [record(tokens=1), record(error="timeout"), record(workload="b")]
    summary = summarize(records)
    text = summary.model_dump_json(indent=2)
    assert Summary.model_validate_json(text) == summary
    group = json.loads(text)["all"]
    assert "slo" not in group and "workloads" in group  # as version 1 wrote it: no SLO, no key
    assert "workloads" not in group["workloads"]["b"]
    assert set(group["latency_ms"]["ttft"]) == {"n", "p50", "p90", "p95", "p99", "p99.9", "mean", "min", "max"}


def test_the_model_has_every_metric_and_percentile() -> None:
    assert tuple(LatencyByMetric.model_fields) == metrics.LATENCY_METRICS
    assert {percentile_field(p) for p in metrics.PERCENTILES} <= set(LatencyStats.model_fields)
    with pytest.raises(KeyError):
        percentile_field(97.0)


def test_a_file_that_is_not_a_summary_is_one_line_naming_it(tmp_path: Path) -> None:
    data = json.loads((DATA / "summary-v1.json").read_text())
    data["all"]["latency_ms"]["ttft"]["p42"] = 1.0
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(data))
    with pytest.raises(
        UserError, match=r"summary.json: not a finishline summary \(version 1\): all.latency_ms.ttft.p42"
    ):
        read_summary(path)
    path.write_text(json.dumps({**data, "version": 2}))
    with pytest.raises(UserError, match="version"):
        read_summary(path)


def test_exported_summary_schema_is_current() -> None:
    committed = (ROOT / "docs" / "summary.schema.json").read_text()
    assert committed == schema_json(), "run: finishline schema --summary --output docs/summary.schema.json"
    assert CliRunner().invoke(cli, ["schema", "--summary"]).output == committed
    schema = json.loads(committed)
    assert schema["additionalProperties"] is False
    assert {"version", "run", "status", "all", "phases"} <= set(schema["required"])
    assert "p99.9" in schema["$defs"]["LatencyStats"]["properties"]
