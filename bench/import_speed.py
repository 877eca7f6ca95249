"""How much showing an import's progress costs: a large GuideLLM file read as ``baseline import``
reads it (parsed as read, with its progress told) against the standard library's parser.

Run: ``python bench/import_speed.py [REQUESTS]`` (default 60,000: a 265 MB file). Writes a
GuideLLM ``benchmarks.json`` of REQUESTS requests (the peers' file's 300, repeated) to a
temporary directory, then times, in one run and alternating, three times each: reading it with
``read_document`` (ijson, a chunk at a time, a progress callback on each), and with
``json.loads`` of the whole text; then the whole ``import_file``. Prints the figures and the
ratio of the two parsers' medians. Measured here (2 cores, 265 MB): 1.26 (5.6 s against 4.4 s),
the import 7.0 s. What should stay true: the ratio at most about 1.3 (the price of a progress bar
is a fraction of the parse, never a multiple) and the import's time mostly the reading.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from coordinator.baselines.importers import import_file
from coordinator.baselines.importers.document import read_document

PEER = Path(__file__).resolve().parents[1] / "tests" / "data" / "peer-results" / "guidellm-concurrent16-gpu8b.json"


def write_file(path: Path, requests: int) -> None:
    data = json.loads(PEER.read_text())
    bench = data["benchmarks"][0]
    kept = bench["requests"]["successful"]
    bench["requests"]["successful"] = [kept[i % len(kept)] for i in range(requests)]
    totals = bench["metrics"]["request_totals"]
    totals["successful"] = totals["total"] = requests
    path.write_text(json.dumps(data))


def timed(fn: object) -> float:
    assert callable(fn)
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 60_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "benchmarks.json"
        write_file(path, requests)
        size = path.stat().st_size
        calls = 0

        def told(_path: Path, _done: int, _size: int) -> None:
            nonlocal calls
            calls += 1

        streamed, whole = [], []
        for _ in range(3):
            streamed.append(timed(lambda: read_document(path, told)))
            whole.append(timed(lambda: json.loads(path.read_text(encoding="utf-8"))))
        imported = timed(lambda: import_file(path, name="bench"))
    s, w = statistics.median(streamed), statistics.median(whole)
    print(f"file: {requests:,} requests, {size / 1e6:,.1f} MB")
    print(
        f"read_document (parsed as read, told {calls // 3} times): median {s:.2f} s  {[round(x, 2) for x in streamed]}"
    )
    print(f"json.loads of the whole text:                median {w:.2f} s  {[round(x, 2) for x in whole]}")
    print(f"ratio (parsed as read / json.loads): {s / w:.2f}")
    print(f"import_file (read, validate, compute the figures): {imported:.2f} s; reading is {s / imported:.0%} of it")


if __name__ == "__main__":
    main()
