"""Other tools' results import in finishline's definitions: each importer against the real files.

tests/data/peer-results/ holds what GuideLLM 0.8.1, AIPerf 0.13.0 and ``vllm bench serve`` (vLLM
0.33.0's own benchmark code) wrote against finishline's simulator (its README says how). Every expected figure here is computed from the raw file by the
test itself, with plain numpy, never read back from the importer's own helpers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from coordinator.baselines.definitions import MAPPINGS
from coordinator.baselines.importers import Imported, formats, import_file
from coordinator.baselines.importers.card import schema_json
from coordinator.baselines.model import LoadKind, MetricStats, Provenance, Step, Tool
from coordinator.baselines.samples import load_npz
from coordinator.baselines.store import BaselineStore
from coordinator.cli import cli
from loadgen.errors import UserError
from tests.paths import DATA, ROOT

PEERS = DATA / "peer-results"
GUIDELLM = PEERS / "guidellm-concurrent16-gpu8b.json"
AIPERF = PEERS / "aiperf-concurrency16-gpu8b.json"
AIPERF_RECORDS = PEERS / "aiperf-concurrency16-gpu8b.records.jsonl"
VLLM_DETAILED = PEERS / "vllm-concurrency16-detailed.json"
VLLM_APPEND = PEERS / "vllm-append.jsonl"
QS = {"p50": 50, "p90": 90, "p95": 95, "p99": 99, "p99_9": 99.9}


def assert_stats(stats: MetricStats, values: Any, fields: tuple[str, ...] = tuple(QS)) -> None:
    values = np.asarray(values, dtype=float)
    assert stats.n == values.size
    assert stats.mean == pytest.approx(values.mean(), rel=1e-9)
    for field in fields:
        assert stats.at(field) == pytest.approx(np.percentile(values, QS[field]), rel=1e-9), field


def only_step(imported: Imported) -> Step:
    assert len(imported.baseline.steps) == 1
    return imported.baseline.steps[0]


# --- GuideLLM ---


def guidellm_raw() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GUIDELLM.read_text())
    return data


def test_guidellm_per_request_figures_are_finishline_definitions() -> None:
    raw = guidellm_raw()["benchmarks"][0]
    reqs = raw["requests"]["successful"]
    t = [r["info"]["timings"] for r in reqs]
    ttft = np.array([(x["first_token_iteration"] - x["request_start"]) * 1000 for x in t])
    e2e = np.array([(x["request_end"] - x["request_start"]) * 1000 for x in t])
    tokens = np.array([r["output_tokens"] for r in reqs], dtype=float)
    tpot = (e2e - ttft) / (tokens - 1)

    imported = import_file(GUIDELLM)
    assert imported.baseline.tool is Tool.GUIDELLM and imported.baseline.tool_version == "0.8.1"
    step = only_step(imported)
    assert step.name == "concurrent-16" and step.load is not None
    assert (step.load.kind, step.load.value, step.load.label) == (LoadKind.CONCURRENCY, 16.0, "concurrent")
    assert (step.requests, step.errors, step.has_samples) == (300, 0, True)
    m = step.metrics
    assert_stats(m["ttft"], ttft)
    assert_stats(m["e2e"], e2e)
    assert_stats(m["tpot"], tpot)
    assert {s.provenance for s in m.values()} == {Provenance.RECORDS}
    # units: GuideLLM's request_latency is in seconds, finishline's E2E in ms
    assert m["e2e"].mean == pytest.approx(np.mean([r["request_latency"] for r in reqs]) * 1000, rel=1e-6)
    # GuideLLM's time_per_output_token_ms counts the first token: not finishline's TPOT ...
    theirs_tpot = np.mean([r["time_per_output_token_ms"] for r in reqs])
    assert m["tpot"].mean is not None and abs(m["tpot"].mean - theirs_tpot) / theirs_tpot > 0.01
    # ... its inter_token_latency_ms is (it ends at the last token, finishline's TPOT at the end)
    assert m["tpot"].mean == pytest.approx(np.mean([r["inter_token_latency_ms"] for r in reqs]), rel=0.005)
    # ITL: the mean per token, from each request's first and last token, and no percentiles
    spans = sum(x["last_token_iteration"] - x["first_token_iteration"] for x in t) * 1000
    assert m["itl"].mean == pytest.approx(spans / (tokens - 1).sum(), rel=1e-9)
    assert m["itl"].p50 is None and m["itl"].n == int((tokens - 1).sum())
    assert m["output_tokens_per_s"].mean == pytest.approx(tokens.sum() / raw["duration"], rel=1e-9)
    assert m["requests_per_s"].mean == pytest.approx(300 / raw["duration"], rel=1e-9)
    assert m["error_rate"].mean == 0.0
    samples = imported.samples["concurrent-16"]
    np.testing.assert_allclose(samples.ttft, ttft)
    assert samples.itl.size == 0 and samples.ok.all() and samples.duration_s == raw["duration"]


def test_guidellm_without_requests_keeps_only_the_figures_that_mean_the_same(tmp_path: Path) -> None:
    raw = guidellm_raw()
    del raw["benchmarks"][0]["requests"]
    path = tmp_path / "benchmarks.json"
    path.write_text(json.dumps(raw))
    metrics = raw["benchmarks"][0]["metrics"]

    imported = import_file(path)
    step = only_step(imported)
    assert not step.has_samples and imported.samples == {}
    m = step.metrics
    assert set(m) == {"ttft", "tpot", "e2e", "output_tokens_per_s", "requests_per_s", "error_rate"}  # no ITL
    ttft = metrics["time_to_first_token_ms"]["successful"]
    assert (m["ttft"].mean, m["ttft"].p50, m["ttft"].p99_9) == (
        ttft["mean"],
        ttft["percentiles"]["p50"],
        ttft["percentiles"]["p999"],
    )
    assert m["ttft"].provenance is Provenance.SUMMARY
    # TPOT is GuideLLM's inter_token_latency_ms, never its time_per_output_token_ms
    assert m["tpot"].mean == metrics["inter_token_latency_ms"]["successful"]["mean"]
    assert m["tpot"].mean != metrics["time_per_output_token_ms"]["successful"]["mean"]
    # E2E converted from seconds
    assert m["e2e"].provenance is Provenance.CONVERTED
    assert m["e2e"].p50 == pytest.approx(metrics["request_latency"]["successful"]["percentiles"]["p50"] * 1000)
    assert m["requests_per_s"].mean == metrics["requests_per_second"]["total"]["mean"]
    assert any("aggregates only" in w for w in imported.baseline.warnings)


def test_guidellm_every_benchmark_is_a_step_labelled_with_its_strategy(tmp_path: Path) -> None:
    raw = guidellm_raw()
    bench = raw["benchmarks"][0]
    strategies = [
        {"type_": "synchronous"},
        {"type_": "throughput", "max_concurrency": 64},
        {"type_": "constant", "rate": 4.5},
        {"type_": "poisson", "rate": 2.0},
        {"type_": "constant", "rate": 4.5},
    ]
    raw["benchmarks"] = []
    for strategy in strategies:
        b = json.loads(json.dumps(bench))
        b["config"]["strategy"] = strategy
        b["config"]["profile"]["kind"] = "sweep"
        raw["benchmarks"].append(b)
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(raw))

    imported = import_file(path)
    got = [(s.name, s.load.kind if s.load else None, s.load.value if s.load else None) for s in imported.baseline.steps]
    assert got == [
        ("synchronous", LoadKind.SYNCHRONOUS, 1.0),
        ("throughput", LoadKind.THROUGHPUT, 64.0),
        ("constant-4.5", LoadKind.RATE, 4.5),
        ("poisson-2", LoadKind.RATE, 2.0),
        ("constant-4.5-2", LoadKind.RATE, 4.5),
    ]
    assert imported.baseline.steps[3].load is not None and imported.baseline.steps[3].load.label == "sweep: poisson"
    assert set(imported.samples) == {s.name for s in imported.baseline.steps}


# --- AIPerf ---


def aiperf_records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in AIPERF_RECORDS.read_text().splitlines() if line.strip()]


def check_aiperf_records(imported: Imported) -> None:
    recs = aiperf_records()
    ttft = np.array([r["metrics"]["time_to_first_token"]["value"] for r in recs])
    e2e = np.array([r["metrics"]["request_latency"]["value"] for r in recs])
    osl = np.array([r["metrics"]["output_sequence_length"]["value"] for r in recs], dtype=float)
    itl = np.concatenate([r["metrics"]["inter_chunk_latency"]["value"] for r in recs])
    step = only_step(imported)
    assert step.name == "concurrency-16" and step.has_samples and step.requests == 300
    m = step.metrics
    assert_stats(m["ttft"], ttft)
    assert_stats(m["e2e"], e2e)
    assert_stats(m["tpot"], (e2e - ttft) / (osl - 1))
    assert_stats(m["itl"], itl)  # one token per chunk in this run: AIPerf's gaps are per token
    summary = json.loads(AIPERF.read_text())
    # AIPerf's inter_token_latency is finishline's TPOT (its own figure and the recomputed one agree)
    assert m["tpot"].mean == pytest.approx(summary["inter_token_latency"]["avg"], rel=1e-9)
    starts = [r["metadata"]["request_start_ns"] for r in recs]
    ends = [r["metadata"]["request_end_ns"] for r in recs]
    duration = summary["benchmark_duration"]["avg"]
    assert duration == pytest.approx((max(ends) - min(starts)) / 1e9, rel=1e-6)
    assert m["output_tokens_per_s"].mean == pytest.approx(osl.sum() / duration, rel=1e-9)
    assert imported.samples["concurrency-16"].itl.size == itl.size


def test_aiperf_with_records_given_apart() -> None:
    imported = import_file(AIPERF, records=AIPERF_RECORDS)
    assert imported.baseline.tool is Tool.AIPERF and imported.baseline.tool_version == "0.13.0"
    check_aiperf_records(imported)
    assert set(imported.sources) == {f"source-{AIPERF.name}", f"source-{AIPERF_RECORDS.name}"}


def test_aiperf_with_profile_export_jsonl_beside_it(tmp_path: Path) -> None:
    shutil.copy(AIPERF, tmp_path / "profile_export_aiperf.json")
    shutil.copy(AIPERF_RECORDS, tmp_path / "profile_export.jsonl")
    check_aiperf_records(import_file(tmp_path / "profile_export_aiperf.json"))


def test_aiperf_summary_only() -> None:
    summary = json.loads(AIPERF.read_text())
    step = only_step(import_file(AIPERF))
    assert not step.has_samples and "itl" not in step.metrics  # inter_chunk_latency is per chunk
    for ours, theirs in (("ttft", "time_to_first_token"), ("tpot", "inter_token_latency"), ("e2e", "request_latency")):
        stats = step.metrics[ours]
        assert stats.provenance is Provenance.SUMMARY
        assert (stats.mean, stats.p50, stats.p99) == tuple(summary[theirs][k] for k in ("avg", "p50", "p99"))
        assert stats.p99_9 is None  # AIPerf does not report it
    assert step.metrics["output_tokens_per_s"].mean == summary["output_token_throughput"]["avg"]


# --- vllm bench serve ---


def test_vllm_detailed_recomputes_from_per_request_arrays() -> None:
    raw = json.loads(VLLM_DETAILED.read_text())
    ok = np.array([not e for e in raw["errors"]])
    ttft = np.array(raw["ttfts"])[ok] * 1000
    e2e = np.array(raw["latencies"])[ok] * 1000
    lens = np.array(raw["output_lens"], dtype=float)[ok]
    itl = np.concatenate([np.array(g) * 1000 for g, good in zip(raw["itls"], ok, strict=True) if good])
    n = raw["completed"] + raw["failed"]
    assert raw["failed"] == 4 and sorted(e for e in raw["errors"] if e) == [
        "Internal Server Error",
        "Too Many Requests",
        "Too Many Requests",
        "Too Many Requests",
    ]

    imported = import_file(VLLM_DETAILED)
    step = only_step(imported)
    assert step.name == "concurrency-16" and step.load is not None and step.load.kind is LoadKind.CONCURRENCY
    assert (step.requests, step.errors, step.errors_by_class) == (n, 4, {"http_429": 3, "http_5xx": 1})
    m = step.metrics
    assert_stats(m["ttft"], ttft)
    assert_stats(m["e2e"], e2e)
    assert_stats(m["tpot"], (e2e - ttft) / (lens - 1))
    assert_stats(m["itl"], itl)  # the simulator sends one token per chunk: vLLM's per-chunk ITL is per token
    # vLLM's own aggregates of the same requests agree: its TTFT and TPOT are finishline's
    assert m["ttft"].mean == pytest.approx(raw["mean_ttft_ms"], rel=1e-9)
    assert m["ttft"].p90 == pytest.approx(raw["p90_ttft_ms"], rel=1e-9)
    assert m["tpot"].p99 == pytest.approx(raw["p99_tpot_ms"], rel=1e-9)
    assert m["requests_per_s"].mean == pytest.approx(n / raw["duration"], rel=1e-9)  # failed ones count too
    assert m["requests_per_s"].mean != pytest.approx(raw["request_throughput"])  # vLLM's counts completed only
    assert m["output_tokens_per_s"].mean == pytest.approx(raw["output_throughput"], rel=1e-9)
    assert m["error_rate"].mean == pytest.approx(4 / n)
    samples = imported.samples["concurrency-16"]
    assert samples.requests == n and int(samples.ok.sum()) == raw["completed"]


def test_vllm_append_result_lines_keep_only_the_percentiles_asked_for() -> None:
    lines = [json.loads(line) for line in VLLM_APPEND.read_text().splitlines()]
    imported = import_file(VLLM_APPEND)
    first, second = imported.baseline.steps
    assert (first.name, second.name) == ("concurrency-16", "rate-8")
    assert second.load is not None and (second.load.kind, second.load.value) == (LoadKind.RATE, 8.0)
    assert imported.samples == {} and not first.has_samples
    # default --metric-percentiles 99: p99 and the median, nothing else
    ttft = first.metrics["ttft"]
    assert (ttft.mean, ttft.p50, ttft.p99) == (
        lines[0]["mean_ttft_ms"],
        lines[0]["median_ttft_ms"],
        lines[0]["p99_ttft_ms"],
    )
    assert ttft.p90 is None and ttft.p99_9 is None and ttft.provenance is Provenance.SUMMARY
    assert "e2e" not in first.metrics  # e2el was not among --percentile-metrics
    assert "itl" not in first.metrics and "itl" not in second.metrics  # per chunk: not finishline's ITL
    assert second.metrics["e2e"].p99_9 == lines[1]["p99.9_e2el_ms"]
    assert second.metrics["tpot"].p50 == lines[1]["p50_tpot_ms"]
    # vLLM's request_throughput counts completed requests only; finishline's every request
    n = lines[0]["completed"] + lines[0]["failed"]
    assert lines[0]["failed"] > 0 and first.metrics["requests_per_s"].provenance is Provenance.CONVERTED
    assert first.metrics["requests_per_s"].mean == pytest.approx(n / lines[0]["duration"], rel=1e-12)
    assert first.metrics["error_rate"].mean == pytest.approx(lines[0]["failed"] / n)


# --- cards ---

CARD = """\
format: card
source: https://example.com/org/model (model card, 2026-11)
model: org/model
server: vLLM 0.11
steps:
  - concurrency: 8
    prompt_tokens: 512
    output_tokens: 128
    ttft_ms: {p50: 120}
    output_tokens_per_s: 2400
  - rate: 4
    tpot_ms: {mean: 11.5, p99: 20}
"""


def test_card_figures_are_declared(tmp_path: Path) -> None:
    path = tmp_path / "card.yaml"
    path.write_text(CARD)
    imported = import_file(path)
    b = imported.baseline
    assert b.tool is Tool.CARD and b.target.model == "org/model" and imported.samples == {}
    c8, r4 = b.steps
    assert c8.name == "concurrency-8" and c8.load is not None and c8.load.value == 8.0
    assert c8.metrics["ttft"].p50 == 120 and c8.metrics["ttft"].mean is None
    assert c8.metrics["output_tokens_per_s"].mean == 2400
    assert set(c8.metrics) == {"ttft", "output_tokens_per_s"}
    assert {s.provenance for s in [*c8.metrics.values(), *r4.metrics.values()]} == {Provenance.DECLARED}
    assert r4.name == "rate-4" and r4.metrics["tpot"].p99 == 20
    assert any("512" in w and "128" in w for w in b.warnings)


def test_a_wrong_card_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "card.yaml"
    path.write_text(CARD.replace("    ttft_ms: {p50: 120}\n", "    ttft_ms: {median: 120}\n"))
    with pytest.raises(UserError, match=r"card\.yaml: not a card YAML \(format: card\) \(steps\[0\]\.ttft_ms\.median"):
        import_file(path)


def test_exported_card_schema_is_current() -> None:
    committed = (ROOT / "docs" / "card.schema.json").read_text()
    assert committed == schema_json(), "run: finishline baseline card-schema --output docs/card.schema.json"
    assert CliRunner().invoke(cli, ["baseline", "card-schema"]).output == committed
    assert json.loads(committed)["properties"]["format"]["const"] == "card"


# --- the registry, the store, the docs ---


def test_format_is_told_by_content_or_forced(tmp_path: Path) -> None:
    assert sorted(formats()) == ["aiperf", "card", "guidellm", "vllm"]
    assert import_file(GUIDELLM, "guidellm").baseline.tool is Tool.GUIDELLM
    with pytest.raises(
        UserError, match=r"guidellm-concurrent16-gpu8b\.json: not a vllm bench serve result \(duration: required"
    ):
        import_file(GUIDELLM, "vllm")
    with pytest.raises(UserError, match="--format: unknown format 'locust'"):
        import_file(GUIDELLM, "locust")
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(UserError, match=r"other\.json: not a results file finishline can import; expected an AIPerf"):
        import_file(other)


def test_a_malformed_guidellm_file_names_the_field(tmp_path: Path) -> None:
    raw = guidellm_raw()
    raw["benchmarks"][0]["requests"]["successful"][3]["info"]["timings"]["request_start"] = "soon"
    path = tmp_path / "benchmarks.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(
        UserError,
        match=r"benchmarks\.json: not a GuideLLM benchmarks\.json \(benchmarks\[0\]\.requests\.successful\[3\]\.info\."
        r"timings\.request_start: Input should be a valid number",
    ):
        import_file(path)


def test_saved_import_keeps_samples_and_source(tmp_path: Path) -> None:
    imported = import_file(AIPERF, records=AIPERF_RECORDS, name="aiperf-c16")
    path = BaselineStore(tmp_path).save(imported.baseline, files=imported.sources, samples=imported.samples)
    assert (path / f"source-{AIPERF.name}").read_bytes() == AIPERF.read_bytes()
    loaded = load_npz(path / "requests.npz")["concurrency-16"]
    np.testing.assert_array_equal(loaded.itl, imported.samples["concurrency-16"].itl)
    np.testing.assert_array_equal(loaded.tpot, imported.samples["concurrency-16"].tpot)
    assert BaselineStore(tmp_path).get("aiperf-c16").baseline == imported.baseline


def test_docs_table_lists_every_mapping() -> None:
    doc = (ROOT / "docs" / "baselines.md").read_text()
    for item in MAPPINGS:
        kept = item.provenance.value if item.provenance else "—"
        row = f"| {item.tool.value} | `{item.field}` | {item.metric or '—'} | {kept} | {item.rule} |"
        assert row in doc, f"docs/baselines.md lacks: {row}"


def test_guidellm_with_a_sample_of_its_requests_uses_its_aggregates(tmp_path: Path) -> None:
    raw = guidellm_raw()
    raw["benchmarks"][0]["requests"]["successful"] = raw["benchmarks"][0]["requests"]["successful"][:50]
    path = tmp_path / "sampled.json"
    path.write_text(json.dumps(raw))
    imported = import_file(path)
    step = only_step(imported)
    assert not step.has_samples and step.requests == 300
    assert step.metrics["ttft"].provenance is Provenance.SUMMARY
    assert any("keeps 50 of its 300 requests" in w for w in imported.baseline.warnings)


def test_itl_is_left_out_when_a_chunk_carried_several_tokens(tmp_path: Path) -> None:
    raw = json.loads(VLLM_DETAILED.read_text())
    gaps = raw["itls"][0]
    raw["itls"][0] = [gaps[0] + gaps[1], *gaps[2:]]  # two tokens in one chunk: 127 tokens after the first, 126 gaps
    path = tmp_path / "merged.json"
    path.write_text(json.dumps(raw))
    imported = import_file(path)
    step = only_step(imported)
    assert "itl" not in step.metrics and imported.samples[step.name].itl.size == 0
    assert "tpot" in step.metrics
    assert any(
        "ITL left out: for 1 request vllm's file does not show one token per chunk" in w
        for w in imported.baseline.warnings
    )


def test_the_cli_offers_every_registered_format() -> None:
    from coordinator.baselines.commands import import_

    choices = next(p for p in import_.params if p.name == "fmt").type
    assert sorted(getattr(choices, "choices", ())) == sorted(formats())


def test_records_of_another_run_or_format_are_refused(tmp_path: Path) -> None:
    short = tmp_path / "other-run.jsonl"
    short.write_text("\n".join(AIPERF_RECORDS.read_text().splitlines()[:10]) + "\n")
    with pytest.raises(UserError, match=r"other-run\.jsonl: 10 profiling records, but .* counts 300 requests"):
        import_file(AIPERF, records=short)
    with pytest.raises(
        UserError, match=r"--records: .*guidellm-concurrent16-gpu8b\.json is a GuideLLM benchmarks\.json"
    ):
        import_file(GUIDELLM, records=AIPERF_RECORDS)
