"""How fast ``finishline compare`` is, and how much memory it takes, for two large runs.

Run: ``python bench/compare_speed.py [N [DIR]]`` (default 100,000 records a run; DIR keeps
the runs for the next time, they take minutes to make). Writes two run
directories of N records each (``records.jsonl.gz`` in the collector's format, with
``RequestRecord.to_json``; ``summary.json`` from ``summarize`` over the columns, as a run makes
it): two phases of two workloads, 64 streamed tokens a request, the second run's decode 10 %
slower. Then times the comparison as the command makes it (both sides read: summaries, records
into columns, per-step samples; the bootstrap of every step and metric; the text table), wall
and CPU time (the CPU time is what a quiet machine's wall time would be), and in a second pass
the peak of Python's allocations during it (tracemalloc: numpy arrays included) and the
process's peak resident size. What should stay true: seconds, not minutes, and memory in
proportion to the records' columns (tens of bytes a record plus 8 a token), never to Python
objects per record.
"""

from __future__ import annotations

import gzip
import resource
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

import numpy as np

from coordinator.compare.comparison import compare
from coordinator.compare.result import Comparison
from coordinator.compare.sides import resolve
from coordinator.compare.tables import text
from coordinator.compare.thresholds import Thresholds
from coordinator.results.columns import read_columns, save_columns
from coordinator.results.summarize import summarize
from coordinator.results.summary import PhaseWindow
from loadgen.records import Attempt, RequestRecord

TOKENS = 64
PHASES = ("steady", "peak")


def record(i: int, n: int, rng: np.random.Generator, slower: float) -> RequestRecord:
    """The ``i``-th of ``n`` requests: 32 in flight, a lognormal TTFT, ~10 ms (x ``slower``) a token."""
    phase = PHASES[0] if i < n // 2 else PHASES[1]
    sent = 1000.0 + i * 0.01
    ttft = float(rng.lognormal(np.log(0.05), 0.3))
    gaps = rng.lognormal(np.log(0.010 * slower), 0.2, TOKENS - 1)
    arrivals = ttft + np.concatenate(([0.0], np.cumsum(gaps)))
    end = sent + float(arrivals[-1]) + 0.001
    attempt = Attempt(
        number=1,
        sent=sent,
        end=end,
        status=200,
        first_byte=sent + ttft / 2,
        first_token=sent + ttft,
        chunk_us=[round(a * 1e6) for a in arrivals],
        chunk_tokens=[1] * TOKENS,
        prompt_tokens=300,
        output_tokens=TOKENS,
    )
    return RequestRecord(
        id=uuid.uuid4().hex,
        run_id="bench",
        worker="w:1",
        phase=phase,
        workload=f"w{i % 2}",
        api="chat",
        stream=True,
        scheduled=sent,
        started=sent,
        end=end,
        wall_time=0.0,
        attempts=[attempt],
    )


def write_run(folder: Path, n: int, seed: int, slower: float) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    with gzip.open(folder / "records.jsonl.gz", "wb") as fh:
        for i in range(n):
            fh.write(record(i, n, rng, slower).to_json() + b"\n")
    cols = read_columns(folder / "records.jsonl.gz")
    save_columns(cols, folder / "records.jsonl.gz")  # as a run's writer keeps them (coordinator.results.writer)
    half = 1000.0 + (n // 2) * 0.01
    windows = [
        PhaseWindow(name=PHASES[0], start=1000.0, end=half),
        PhaseWindow(name=PHASES[1], start=half, end=1000.0 + n * 0.01 + 1.0),
    ]
    summary = summarize(cols, windows)
    (folder / "summary.json").write_text(summary.model_dump_json(indent=2))
    return folder


def timed_compare(current: Path, base: Path) -> tuple[float, float, Comparison]:
    """(seconds reading both sides, seconds in all, the comparison) as ``finishline compare`` makes it."""
    t0 = time.perf_counter()
    sides = resolve(str(current), base.parent), resolve(str(base), base.parent)
    read = time.perf_counter() - t0
    result = compare(*sides, Thresholds())
    assert text(result)
    return read, time.perf_counter() - t0, result


def main(n: int, folder: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = folder or Path(tmp)
        base, current = root / f"base-{n}", root / f"current-{n}"
        t0 = time.perf_counter()
        if not (base / "summary.json").exists():
            write_run(base, n, seed=1, slower=1.0)
            write_run(current, n, seed=2, slower=1.1)
        made = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in base.iterdir())
        cpu0 = time.process_time()
        read, took, result = timed_compare(current, base)
        cpu = time.process_time() - cpu0
        tracemalloc.start()  # a second pass for memory: tracemalloc slows allocation, not timed
        timed_compare(current, base)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = sum(len(s.metrics) for s in result.steps)
    print(f"runs: 2 x {n:,} records ({TOKENS} tokens each, {size / 1e6:.1f} MB a run on disk; made in {made:.0f} s)")
    print(
        f"compare: {took:.2f} s wall, {cpu:.2f} s CPU ({read:.2f} s reading both sides, "
        f"{took - read:.2f} s comparing {len(result.steps)} steps, {rows} figures)"
    )
    print(
        f"memory: peak {peak / 1e6:.0f} MB allocated during compare ({peak / (2 * n):,.0f} bytes a record), peak RSS {rss:.0f} MB"
    )
    print(f"verdict: {result.headline}")
    assert result.regression


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000, Path(sys.argv[2]) if len(sys.argv) > 2 else None)
