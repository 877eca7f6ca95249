"""The real ``finishline baseline import``: a peer file becomes a baseline in the store; an unknown
or malformed file is refused with one line naming the file and the field, exit code 2.

The figures themselves are checked in process (tests/unit/test_baseline_import.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from coordinator.baselines.samples import load_npz
from coordinator.baselines.store import BaselineStore
from tests.fixtures.cli import finishline
from tests.paths import DATA

PEERS = DATA / "peer-results"


def one_line_exit_2(*args: str) -> str:
    proc = finishline(*args, timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_import_saves_baseline_samples_and_source(tmp_path: Path) -> None:
    store = tmp_path / "baselines"
    source = PEERS / "aiperf-concurrency16-gpu8b.json"
    records = PEERS / "aiperf-concurrency16-gpu8b.records.jsonl"
    args = ("baseline", "import", str(source), "--name", "aiperf-c16", "--records", str(records), "--store", str(store))
    proc = finishline(*args, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "imported" in proc.stdout and "1 with per-request data" in proc.stdout
    folder = store / "aiperf-c16"
    assert (folder / f"source-{source.name}").read_bytes() == source.read_bytes()
    assert (folder / f"source-{records.name}").exists()
    assert load_npz(folder / "requests.npz")["concurrency-16"].requests == 300
    assert BaselineStore(store).get("aiperf-c16").baseline.tool.value == "aiperf"
    # the same name again needs --force
    line = one_line_exit_2(*args)
    assert line == f"finishline: baseline 'aiperf-c16' exists in {store}; use --force to replace it"
    assert finishline(*args, "--force", timeout=60).returncode == 0


def test_unknown_and_malformed_files_are_one_line_and_exit_2(tmp_path: Path) -> None:
    store = str(tmp_path / "baselines")
    unknown = tmp_path / "locust_stats.json"
    unknown.write_text(json.dumps({"stats": [], "errors": []}))
    line = one_line_exit_2("baseline", "import", str(unknown), "--name", "x", "--store", store)
    assert line.startswith(f"finishline: {unknown}: not a results file finishline can import; expected ")

    raw = json.loads((PEERS / "guidellm-concurrent16-gpu8b.json").read_text())
    raw["benchmarks"][0]["metrics"]["request_totals"]["total"] = "three hundred"
    malformed = tmp_path / "benchmarks.json"
    malformed.write_text(json.dumps(raw))
    line = one_line_exit_2("baseline", "import", str(malformed), "--name", "x", "--store", store)
    assert line == (
        f"finishline: {malformed}: not a GuideLLM benchmarks.json (benchmarks[0].metrics.request_totals.total: "
        "Input should be a valid integer, unable to parse string as an integer)"
    )

    line = one_line_exit_2(
        "baseline", "import", str(PEERS / "vllm-append.jsonl"), "--name", "x", "--format", "card", "--store", store
    )
    assert "vllm-append.jsonl: not a card YAML (format: card) (" in line

    garbage = tmp_path / "card.yaml"
    garbage.write_text("format: card\nsteps: [\n")
    line = one_line_exit_2("baseline", "import", str(garbage), "--name", "x", "--store", store)
    assert line == f"finishline: {garbage}: neither JSON, JSON lines nor YAML (a YAML error at line 3)"
    assert not (tmp_path / "baselines").exists() or not list((tmp_path / "baselines").iterdir())
