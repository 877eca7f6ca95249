"""``finishline run --baseline NAME``: the finished run compared with a stored baseline, kept in its directory.

The run writes ``compare.json`` and ``compare.md`` beside its summary; a regression becomes the
run's outcome only when nothing more serious happened (``coordinator.results.outcome``: a
partial, failed or invalid run keeps its own outcome, with the regression among its reasons).
"""

from __future__ import annotations

from pathlib import Path

from coordinator.compare.comparison import compare
from coordinator.compare.result import Comparison
from coordinator.compare.sides import Side, resolve, run_side
from coordinator.compare.tables import markdown
from coordinator.compare.thresholds import Thresholds
from coordinator.results.files import write_atomic

JSON_FILE = "compare.json"
MARKDOWN_FILE = "compare.md"


def check_baseline(name: str, store: Path) -> Side:
    """The baseline side, read before the run starts, so a wrong name costs no run (exit 2)."""
    return resolve(name, store)


def compare_run(run_dir: Path, baseline: Side, thresholds: Thresholds) -> Comparison:
    """The run against the baseline, written into the run directory."""
    result = compare(run_side(str(run_dir), run_dir), baseline, thresholds)
    write_atomic(run_dir / JSON_FILE, result.model_dump_json(indent=2) + "\n")
    write_atomic(run_dir / MARKDOWN_FILE, markdown(result))
    return result
