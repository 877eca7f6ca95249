"""The results in compact columns: one pass over the records file, exact, and bounded in memory (no services)."""

from __future__ import annotations

import csv
import gzip
import time
from collections import Counter
from dataclasses import fields
from pathlib import Path

import numpy as np

from coordinator.results.collector import RecentIds
from coordinator.results.columns import RecordColumns, columns_file, read_columns, save_columns
from coordinator.results.report_tables import errors_table
from coordinator.results.summarize import summarize
from coordinator.results.table import write_csv
from coordinator.run.progress import ProgressModel
from loadgen import metrics
from loadgen.records import RequestRecord
from tests.factories import record as make_record
from tests.factories import varied_records


def test_itl_over_many_attempts_is_itl_value_for_value() -> None:
    records = varied_records(400)
    attempts = [r.final for r in records if r.attempts]
    offsets = np.array([us for a in attempts for us in a.chunk_us], dtype=np.int64)
    padded = [(list(a.chunk_tokens) + [0] * len(a.chunk_us))[: len(a.chunk_us)] for a in attempts]
    tokens = np.array([c for row in padded for c in row], dtype=np.int64)
    first = np.zeros(offsets.size, dtype=bool)
    at = 0
    for a in attempts:
        if a.chunk_us:
            first[at] = True
        at += len(a.chunk_us)
    gaps, weights = metrics.itl_of_chunks(offsets, tokens, first)
    expected = [v for a in attempts for v in metrics.itl(a)]
    assert len(expected) > 1000
    assert np.repeat(gaps, weights).tolist() == expected  # the same floats, not close ones


def test_the_summary_over_the_columns_is_numpy_over_the_records(tmp_path: Path) -> None:
    records = varied_records(3000)
    path = tmp_path / "records.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        for rec in records:
            fh.write(rec.to_json() + b"\n")
    cols = read_columns(path)
    assert cols.n == len(records)
    s = summarize(cols, unmeasured=frozenset({"warm"}))
    assert s == summarize(records, unmeasured=frozenset({"warm"}))  # the file, or the records in hand

    def check(group_records: list[RequestRecord], got: object) -> None:
        ok = [r for r in group_records if r.ok]
        expected = {
            "ttft": [metrics.ttft(r.final) for r in ok],
            "tpot": [metrics.tpot(r.final) for r in ok],
            "e2e": [metrics.e2e(r.final) for r in ok],
            "dispatch_delay": [metrics.dispatch_delay(r) for r in ok],
            "user_latency": [metrics.user_latency(r) for r in ok],
            "itl": [v for r in ok for v in metrics.itl(r.final)],
        }
        for name, values in expected.items():
            ms = np.array([v for v in values if v is not None], dtype=float) * 1000.0
            stats = got.latency_ms.get(name)  # type: ignore[attr-defined]
            assert stats.n == ms.size, name
            assert [stats.at(p) for p in metrics.PERCENTILES] == np.percentile(ms, metrics.PERCENTILES).tolist(), name
            assert stats.mean == float(ms.mean()), name
        assert got.errors_by_class == dict(sorted(Counter(r.outcome for r in group_records if not r.ok).items()))  # type: ignore[attr-defined]
        every_attempt = Counter(a.error or "ok" for r in group_records for a in r.attempts)
        assert got.attempts_by_class == dict(sorted(every_attempt.items()))  # type: ignore[attr-defined]
        assert got.attempts == sum(len(r.attempts) for r in group_records)  # type: ignore[attr-defined]
        assert got.retries == sum(r.retries for r in group_records)  # type: ignore[attr-defined]
        assert got.output_tokens == sum(metrics.output_tokens(r) for r in ok)  # type: ignore[attr-defined]

    measured = [r for r in records if r.phase != "warm"]
    check(measured, s.all)
    check([r for r in measured if r.workload == "rag"], s.all.workloads["rag"])
    check([r for r in records if r.phase == "warm" and r.workload == "code"], s.phases["warm"].workloads["code"])
    assert (
        s.all.attempts_by_class is not None and s.all.attempts_by_class["http_429"] > s.all.errors_by_class["http_429"]
    )


def test_a_retried_429_is_counted_as_an_attempt_in_the_csv_and_the_report(tmp_path: Path) -> None:
    records = [make_record(), make_record(retries=2)]  # two 503s (http_5xx), then success
    s = summarize(records)
    assert s.all.errors_by_class == {} and s.all.attempts_by_class == {"http_5xx": 2, "ok": 2}
    rows = list(csv.reader(write_csv(s, tmp_path / "summary.csv").open()))
    assert rows[0][-1] == "attempts_by_class" and rows[-1][-1] == "http_5xx=2;ok=2"
    table = errors_table(s)
    assert "<td>0</td><td>2</td>" in table and "attempts" in table  # no request failed, two attempts did


def test_recent_ids_are_known_for_at_least_the_bound_and_held_at_most_twice() -> None:
    ids = RecentIds(min_ids=100, min_s=0.0)
    for i in range(1000):
        ids.add(str(i))
        assert len(ids) <= 200
        assert all(str(j) in ids for j in range(max(0, i - 99), i + 1))
    assert "0" not in ids
    slow = RecentIds(min_ids=10, min_s=60.0)  # a minute not passed: nothing forgotten, whatever the count
    slow.update(str(i) for i in range(500))
    assert all(str(i) in slow for i in range(500))


def test_the_progress_model_holds_only_its_window() -> None:
    model = ProgressModel(window_s=10.0)
    model.set_phase("soak", 0.0)
    for second in range(600):  # ten minutes at 50 requests/s, never displayed (--no-live)
        model.add([make_record(phase="soak", t0=second + i / 50) for i in range(50)])
        assert model.held <= 50 * 12
    assert model.requests == 30_000
    assert model.snapshot({}, now=time.monotonic()).requests == 30_000


def test_kept_columns_load_as_read_and_are_ignored_once_the_records_change(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        for rec in varied_records(400, seed=5):
            fh.write(rec.to_json() + b"\n")
    parsed = read_columns(path)
    kept = save_columns(parsed, path)
    assert kept == columns_file(path) and kept.exists()
    loaded = read_columns(path)
    for item in fields(RecordColumns):
        a, b = getattr(parsed, item.name), getattr(loaded, item.name)
        if item.name == "values":
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
        elif isinstance(a, tuple):
            assert a == b, item.name
        else:
            assert np.array_equal(a, b, equal_nan=True) and a.dtype == b.dtype, item.name
    assert summarize(loaded) == summarize(parsed)
    # the records written again (a recovered run): the kept columns are of another file
    with gzip.open(path, "wb") as fh:
        fh.write(varied_records(3, seed=6)[0].to_json() + b"\n")
    assert read_columns(path).n == 1
