"""``finishline run`` of a scenario with a ``matrix``: every variant in turn, each a whole run.

Each variant is run by :class:`coordinator.run.runner.Run`, exactly as a scenario without a
matrix is: its own target (a fresh simulator process or container, started and stopped by
that run), Redis, Locust and results, into ``OUT/variants/<variant>/``, a complete run
directory. After each variant, ``OUT/matrix.json`` and ``OUT/report.html`` put the variants
side by side (``coordinator.results.matrix``), so a matrix killed halfway still shows what
it measured.

Ctrl-C or SIGTERM stops the variant running (that run keeps what it measured, as any run
does) and no further variant starts; one arriving between two variants only stops the next.
The matrix's outcome, and so the exit code, is the most serious of its variants'.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import yaml
from pydantic import ValidationError

from coordinator.results.files import write_atomic
from coordinator.results.matrix import (
    VARIANTS_DIR,
    MatrixResult,
    VariantResult,
    matrix_outcome,
    variant_result,
)
from coordinator.results.matrix_report import write_matrix
from coordinator.results.outcome import Outcome, RunOutcome, decide
from coordinator.results.summary import Summary, read_summary
from coordinator.run.runner import Run, new_run_id
from coordinator.run.signals import StopSignals
from coordinator.scenario.matrix import Variant, variants
from coordinator.scenario.models import Scenario
from loadgen.errors import UserError


@dataclass(frozen=True)
class MatrixRun:
    """Where the matrix's results are, and what they say."""

    matrix_dir: Path
    result: MatrixResult

    @property
    def exit_code(self) -> int:
        return self.result.outcome.exit_code


class _Stop(StopSignals):
    """SIGINT/SIGTERM between two variants: no further variant starts (a run installs its own
    handlers while it lasts and puts these back after)."""

    def __init__(self) -> None:
        super().__init__(self._on_signal)
        self.reason: str | None = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.reason = f"interrupted ({signal.Signals(signum).name})"


def run_matrix(
    scenario: Scenario,
    scenario_path: Path,
    *,
    live: bool | None = None,
    notify: Callable[[str], None] = lambda line: None,
    run_id: str | None = None,
) -> MatrixRun:
    """Run every variant of ``scenario``'s matrix in turn; ``notify`` hears which one starts."""
    found = variants(scenario)
    if not found:
        raise UserError("matrix: the scenario has no matrix; run it as it is")
    run_id = run_id or new_run_id(scenario.name)
    matrix_dir = Path(scenario.output_dir) / run_id
    try:
        matrix_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(matrix_dir / "scenario.yaml", yaml.safe_dump(scenario.redacted(), sort_keys=False))
    except OSError as exc:  # nothing started yet: bad output_dir, exit 2
        raise UserError(
            f"output_dir: cannot write {exc.filename or matrix_dir}: {exc.strerror or exc}; "
            "free space or choose another output_dir"
        ) from None
    done: list[VariantResult] = []

    def write(not_run_because: str) -> MatrixResult:
        pending = [_not_run(v) for v in found[len(done) :]]
        result = MatrixResult(
            id=run_id,
            scenario=scenario.name,
            axes=dict(scenario.matrix),
            variants=done + pending,
            outcome=matrix_outcome(done + pending, not_run_because),
        )
        write_matrix(matrix_dir, result)
        return result

    with _Stop() as stop:
        for i, variant in enumerate(found, start=1):
            if stop.reason is not None:
                break
            notify(f"variant {i}/{len(found)}: {variant.name}")
            entry, signalled = _run_variant(variant, scenario_path, matrix_dir, f"{run_id}-{i}", live)
            done.append(entry)
            if signalled or (entry.outcome is not None and entry.outcome.outcome is Outcome.INTERRUPTED):
                stop.reason = stop.reason or "interrupted"
            if len(done) < len(found):
                write("not run yet")
        result = write(stop.reason or "stopped")
    return MatrixRun(matrix_dir, result)


def _not_run(variant: Variant) -> VariantResult:
    return variant_result(variant.name, variant.values, f"{VARIANTS_DIR}/{variant.name}")


def _run_variant(
    variant: Variant, scenario_path: Path, matrix_dir: Path, run_id: str, live: bool | None
) -> tuple[VariantResult, bool]:
    """One variant as a whole run, and whether a signal arrived while it ran; a mistake found once
    it started (an image that is not there) ends that variant (exit 2), not the matrix."""
    relative = f"{VARIANTS_DIR}/{variant.name}"
    run_dir = matrix_dir / relative
    summary: Summary | None
    outcome: RunOutcome | None
    run = Run(variant.scenario, scenario_path, live=live, run_id=run_id, run_dir=run_dir)
    try:
        result = run.execute()
        summary, outcome, signalled = result.summary, result.outcome, result.signalled
    except (UserError, ValidationError) as exc:
        outcome = decide({Outcome.BAD_INPUT: [str(exc)]})
        summary, signalled = _summary_of(run_dir), run.ctx.stop_requested.is_set()
    return variant_result(variant.name, variant.values, relative, run_id, outcome, summary), signalled


def _summary_of(run_dir: Path) -> Summary | None:
    path = run_dir / "summary.json"
    try:
        return read_summary(path) if path.exists() else None
    except UserError:
        return None
