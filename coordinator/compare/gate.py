"""``finishline run --baseline NAME``: the finished run compared with a baseline, kept in its directory.

The baseline's figures (and the thresholds) are read before the run starts, so a wrong name
costs no run (exit 2); its per-request values are read at the end. At the end the run writes ``compare.json`` and ``compare.md`` beside its
summary; a regression becomes the run's outcome only when nothing more serious happened
(``coordinator.results.outcome``: a partial, failed or invalid run keeps its own outcome, with
the regression among its reasons). ``summary.json`` and the report's verdict are rewritten
with the outcome, so they agree with the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coordinator.compare.comparison import compare
from coordinator.compare.result import Comparison
from coordinator.compare.sides import Side, resolve, run_side
from coordinator.compare.tables import markdown
from coordinator.compare.thresholds import Thresholds, read_thresholds
from coordinator.results.files import write_atomic
from coordinator.results.outcome import Outcome, RunOutcome, with_problem
from coordinator.results.report import restate_verdict
from coordinator.results.summary import Summary
from loadgen.errors import UserError

JSON_FILE = "compare.json"
MARKDOWN_FILE = "compare.md"


@dataclass(frozen=True)
class Gate:
    """What a run is compared with at its end."""

    baseline: str
    store: Path
    thresholds: Thresholds

    @classmethod
    def read(cls, baseline: str, store: Path, thresholds: Path | None) -> Gate:
        """Checked before the run (its figures read, its per-request values left for the end)."""
        limits = read_thresholds(thresholds)
        resolve(baseline, store, samples=False)
        return cls(baseline, store, limits)

    def side(self) -> Side:
        return resolve(self.baseline, self.store)


@dataclass(frozen=True)
class Gated:
    comparison: Comparison | None  # None: it could not be made (the reason is in the outcome)
    outcome: RunOutcome


def gate_run(gate: Gate, run_dir: Path, summary: Summary, outcome: RunOutcome) -> Gated:
    """The run against the baseline: the comparison written, the outcome with it, the summary and
    report restated when the outcome changed."""
    try:
        result: Comparison | None = compare(run_side(str(run_dir), run_dir), gate.side(), gate.thresholds)
    except UserError as exc:  # no step matched: the baseline given does not fit this scenario
        result, new = None, with_problem(outcome, Outcome.BAD_INPUT, f"--baseline: {exc}")
    else:
        assert result is not None
        write_atomic(run_dir / JSON_FILE, result.model_dump_json(indent=2) + "\n")
        write_atomic(run_dir / MARKDOWN_FILE, markdown(result))
        new = with_problem(outcome, Outcome.REGRESSION, result.finding) if result.regression else outcome
    if new != outcome:
        restated = summary.model_copy(update={"outcome": new})
        write_atomic(run_dir / "summary.json", restated.model_dump_json(indent=2, fallback=str) + "\n")
        if (run_dir / "report.html").exists():
            restate_verdict(run_dir / "report.html", restated)
    return Gated(result, new)
