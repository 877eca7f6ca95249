"""``finishline run --baseline NAME``: the finished run compared with a baseline, kept in its directory.

The baseline's figures (and the thresholds) are read before the run starts, so a wrong name
costs no run (exit 2); its per-request values are read at the end. At the end the run writes ``compare.json`` and ``compare.md`` beside its
summary; a regression becomes the run's outcome only when nothing more serious happened
(``coordinator.results.outcome``: a partial, failed or invalid run keeps its own outcome, with
the regression among its reasons). ``summary.json`` is rewritten with the outcome, and the
report's verdict with the outcome and a row for the comparison (the worst figures first), so
they agree with the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coordinator.compare.comparison import compare
from coordinator.compare.result import Comparison, Verdict
from coordinator.compare.sides import Side, resolve, run_side
from coordinator.compare.tables import delta, label, markdown, value
from coordinator.compare.thresholds import Thresholds, read_thresholds
from coordinator.results.files import write_atomic
from coordinator.results.outcome import Outcome, RunOutcome, with_problem
from coordinator.results.summary import Summary
from coordinator.results.verdict import Check, Tone, restate_verdict
from loadgen.errors import UserError

JSON_FILE = "compare.json"
MARKDOWN_FILE = "compare.md"
WORST_SHOWN = 3  # the figures the report's verdict names; compare.md has every one


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
    """The run against the baseline: the comparison written, the outcome with it, the summary
    restated when the outcome changed, the report's verdict with the comparison's row always."""
    try:
        result: Comparison | None = compare(run_side(str(run_dir), run_dir), gate.side(), gate.thresholds)
    except UserError as exc:  # no step matched: the baseline given does not fit this scenario
        result, new = None, with_problem(outcome, Outcome.BAD_INPUT, f"--baseline: {exc}")
    else:
        assert result is not None
        write_atomic(run_dir / JSON_FILE, result.model_dump_json(indent=2) + "\n")
        write_atomic(run_dir / MARKDOWN_FILE, markdown(result))
        new = with_problem(outcome, Outcome.REGRESSION, result.finding) if result.regression else outcome
    restated = summary.model_copy(update={"outcome": new})
    if new != outcome:
        write_atomic(run_dir / "summary.json", restated.model_dump_json(indent=2, fallback=str) + "\n")
    if (run_dir / "report.html").exists():
        restate_verdict(run_dir / "report.html", restated, (verdict_check(gate.baseline, result, new),))
    return Gated(result, new)


def verdict_check(baseline: str, result: Comparison | None, outcome: RunOutcome) -> Check:
    """The comparison as a row of the report's verdict: regression or not, with the figures that
    decided it (the worse ones, worst first; without any, the judged ones that moved furthest the
    wrong way), each as baseline → current (delta)."""
    name = f"Baseline {baseline}"
    if result is None:
        reason = next((r for r in outcome.reasons if r.startswith("--baseline")), "the comparison could not be made")
        return Check(name, "not compared", Tone.BAD, reason)
    rows = result.worst_first()
    worse = [(step, m) for step, m in rows if m.verdict is Verdict.WORSE]
    judged = sorted((r for r in rows if r[1].verdict is not Verdict.UNJUDGED), key=lambda r: -r[1].badness)
    shown = (worse or judged)[:WORST_SHOWN]
    items = tuple(
        f"{step.match}, {step.workload}: {label(m)} {value(m, m.baseline)} → {value(m, m.current)} {m.unit}, "
        f"{delta(m)}: {m.verdict.value}"
        for step, m in shown
    )
    heading = " The worst:" if worse else " The closest to one:" if items else ""
    detail = f"{result.finding}; every figure is in compare.md beside this report.{heading}"
    return Check(
        name,
        "REGRESSION" if result.regression else "no regression",
        Tone.BAD if result.regression else Tone.OK,
        detail,
        items,
    )
