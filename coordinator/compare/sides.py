"""The two sides of a comparison: what a command-line argument names, read into a baseline and its samples.

An argument is, in this order: a finishline run directory (it has ``summary.json``), a
baseline's folder (it has ``baseline.json``), a file (another tool's result, imported on the
fly: :func:`imported_side`), or the name of a baseline in the store. Each side is a
:class:`~coordinator.baselines.model.Baseline` (a run is read as one, so both sides look the
same) with the per-request values of its steps where the source kept them, which is what
lets the comparison bootstrap instead of comparing two numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from coordinator.baselines.from_run import baseline_from_run, step_samples
from coordinator.baselines.importers.document import OnRead
from coordinator.baselines.model import (
    BASELINE_FILE,
    NAME_PATTERN,
    RECORDS_FILE,
    REQUESTS_FILE,
    Baseline,
    Step,
    read_baseline,
)
from coordinator.baselines.samples import StepSamples, load_npz
from coordinator.baselines.store import BaselineStore
from coordinator.results.coldstart import RESULT_FILE as COLD_START_FILE
from coordinator.results.coldstart import ColdStartResult
from loadgen.errors import UserError

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Side:
    """One side: its baseline model, each step's samples, each cold-start metric's values (ms)."""

    label: str  # what the user gave
    baseline: Baseline
    samples: dict[tuple[str, str], StepSamples] = field(default_factory=dict)  # (samples_key, workload)
    cold_starts: dict[str, Floats] = field(default_factory=dict)  # cold_start.<metric> -> one value per start

    def samples_of(self, step: Step) -> StepSamples | None:
        if not step.has_samples or step.samples_key is None:
            return None
        return self.samples.get((step.samples_key, step.workload))


def cold_start_values(path: Path) -> dict[str, Floats]:
    """Each cold-start metric's values, one per start, in ms (``cold_start.json``; none without it)."""
    if not path.exists():
        return {}
    try:
        result = ColdStartResult.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return {}

    def ms(values: list[float]) -> Floats:
        return np.asarray(values, dtype=np.float64) * 1000.0

    out = {f"cold_start.{name}": ms(values) for name, values in result.steps.items()}
    out["cold_start.cold_ttft"] = ms(result.cold_ttft)
    out["cold_start.warm_ttft"] = ms(result.warm_ttft)
    return out


def run_side(label: str, run_dir: Path, samples: bool = True) -> Side:
    """A run directory as a side (``samples``: read its records too)."""
    made = baseline_from_run(run_dir, "run", description=str(run_dir))
    slo = made.summary.slo if made.summary is not None else None
    if not samples:
        return Side(label, made)
    return Side(
        label,
        made,
        step_samples(run_dir / RECORDS_FILE, made.steps, slo),
        cold_start_values(run_dir / COLD_START_FILE),
    )


def stored_side(label: str, folder: Path, baseline: Baseline, samples: bool = True) -> Side:
    """A baseline from a store: a run's records beside it, or an imported file's ``requests.npz``."""
    found: dict[tuple[str, str], StepSamples] = {}
    if not samples:
        return Side(label, baseline)
    if (folder / RECORDS_FILE).exists():
        slo = baseline.summary.slo if baseline.summary is not None else None
        found = step_samples(folder / RECORDS_FILE, baseline.steps, slo)
    elif (folder / REQUESTS_FILE).exists():
        try:
            by_key = load_npz(folder / REQUESTS_FILE)
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"{folder / REQUESTS_FILE}: cannot read it ({exc})") from None
        found = {(key, "all"): value for key, value in by_key.items()}
    return Side(label, baseline, found, cold_start_values(folder / COLD_START_FILE))


def imported_side(label: str, path: Path, samples: bool = True, on_read: OnRead | None = None) -> Side:
    """Another tool's result file as a side, imported as ``finishline baseline import`` would
    (its per-request values, where the file has them, by step)."""
    from coordinator.baselines.importers import import_file  # every format's importer: only when asked

    imported = import_file(path, on_read=on_read)
    found = {(key, "all"): value for key, value in imported.samples.items()} if samples else {}
    return Side(label, imported.baseline, found)


def resolve(argument: str, store: Path, samples: bool = True, on_read: OnRead | None = None) -> Side:
    """The side an argument names (see the module's docstring for the order); one line if none.
    ``samples=False``: its figures only (to check an argument before a run, cheaply); ``on_read``:
    told the progress of reading another tool's file."""
    path = Path(argument)
    if path.is_dir():
        if (path / "summary.json").exists():
            return run_side(argument, path, samples)
        if (path / BASELINE_FILE).exists():
            return stored_side(argument, path, read_baseline(path / BASELINE_FILE), samples)
        raise UserError(
            f"{argument}: neither a finished run directory (no summary.json) nor a baseline (no {BASELINE_FILE})"
        )
    if path.is_file():
        return imported_side(argument, path, samples, on_read)
    if "/" in argument or argument.endswith((".json", ".jsonl", ".yaml", ".yml")):
        raise UserError(f"{argument}: no such file or directory")
    if not re.match(NAME_PATTERN, argument):
        raise UserError(f"{argument}: not a run directory, a file or a baseline name")
    stored = BaselineStore(store).get(argument)
    return stored_side(argument, stored.path, stored.baseline, samples)
