"""Write a run's results: ``summary.json``, ``summary.csv`` and ``report.html``, from the records.

The run hands over what it knows as :class:`RunFacts`; nothing here reads the run's own objects.
The records are read back from the collector's file in one pass into compact columns
(:mod:`coordinator.results.columns`): the run held none of them while it lasted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from coordinator.results.columns import RecordColumns, read_columns, save_columns
from coordinator.results.files import write_atomic
from coordinator.results.losses import Losses
from coordinator.results.outcome import Checks, judge
from coordinator.results.report import write_report
from coordinator.results.selfcheck import SelfCheckLimits, evaluate
from coordinator.results.slo import Slo
from coordinator.results.soak import SOAK_FILE, SoakAnalysis, SoakSpec, analyse, read_container_stats, soak_phase
from coordinator.results.status import RunStatus
from coordinator.results.summarize import summarize
from coordinator.results.summary import PhaseWindow, RunInfo, Summary
from coordinator.results.table import write_csv
from loadgen.samples import WorkerSample


@dataclass(frozen=True)
class RunFacts:
    """What the run tells the results about itself."""

    run_id: str
    scenario: str
    target: str | None
    started_wall: float
    windows: Sequence[PhaseWindow]
    slo: Slo | None
    selfcheck: SelfCheckLimits
    unmeasured: frozenset[str] = frozenset()  # the plan's warm-up steps
    extras: dict[str, Any] = field(default_factory=dict)
    checks: Checks = field(default_factory=Checks)
    soak: SoakSpec | None = None  # the scenario's soak section: analyse the run as a soak
    interrupted: str | None = None  # why a signal stopped the run
    failures: tuple[str, ...] = ()  # parts of the run that failed, records lost
    target_down: str | None = None  # why the run ended early: every request failed
    bad_input: str | None = None  # a user mistake found once the run had started
    losses: Losses | None = None  # records and workers lost (partial when there are any)


class Collected(Protocol):
    """Where a run's records and samples are: a finished :class:`Collector`, or a records file alone."""

    @property
    def path(self) -> Path: ...

    def samples(self) -> list[WorkerSample]: ...


def write_results(
    run_dir: Path, facts: RunFacts, collector: Collected, status: RunStatus, reason: str | None
) -> Summary:
    """Summarise every record the collector wrote (call after :meth:`Collector.finish`); returns the summary."""
    records = read_columns(collector.path)
    with contextlib.suppress(OSError):  # a cache: without it, readers parse the records again
        save_columns(records, collector.path)
    samples = collector.samples()
    check = evaluate(samples, records, facts.selfcheck)
    run_info = RunInfo(
        id=facts.run_id,
        scenario=facts.scenario,
        target=facts.target,
        started_wall=facts.started_wall,
        phases=tuple(facts.windows),
        records=records.n,
        extras=facts.extras,
    )
    summary = summarize(
        records,
        facts.windows,
        facts.slo,
        partial=status is not RunStatus.COMPLETE,
        partial_reason=reason,
        selfcheck=check,
        run=run_info,
        unmeasured=facts.unmeasured,
    )
    soak = _soak(run_dir, facts, records, samples)
    if soak is not None:
        summary = summary.model_copy(update={"soak": soak.verdict})
    drift = soak.verdict.reasons if soak is not None and soak.verdict.verdict == "drifting" else ()
    losses = facts.losses if facts.losses is not None and facts.losses.reasons() else None
    failures = facts.failures + tuple(losses.reasons() if losses is not None else ())

    def judged(failures: tuple[str, ...]) -> Summary:
        outcome = judge(
            summary,
            facts.checks,
            enforce_slo=facts.slo is not None and facts.slo.enforce,
            interrupted=facts.interrupted,
            failures=failures,
            target_down=facts.target_down,
            bad_input=facts.bad_input,
            drift=drift,
        )
        final = RunStatus.PARTIAL if status is RunStatus.COMPLETE and failures else status
        return summary.model_copy(
            update={"outcome": outcome, "losses": losses, "status": final, "partial": final is not RunStatus.COMPLETE}
        )

    result = judged(failures)
    # soak.json, the CSV and the report first: if one cannot be written, the summary says so (partial)
    # rather than calling a run complete beside a missing report.
    written: list[str] = []
    writes: list[tuple[str, Callable[[Summary], object]]] = []
    if soak is not None:  # before the report, which reads it
        writes.append((SOAK_FILE, lambda s: write_atomic(run_dir / SOAK_FILE, soak.model_dump_json(indent=2) + "\n")))
    for name, write in (
        *writes,
        ("summary.csv", lambda s: write_csv(s, run_dir / "summary.csv")),
        ("report.html", lambda s: _report(run_dir, s, records, samples)),
    ):
        try:
            write(result)
        except OSError as exc:
            written.append(f"cannot write {exc.filename or run_dir / name}: {exc.strerror or exc}")
    if written:
        result = judged(failures + tuple(written))
    # fallback: an add-on's extra that JSON cannot hold is written as its str(), not lost with the summary
    write_atomic(run_dir / "summary.json", result.model_dump_json(indent=2, fallback=str) + "\n")
    return result


def _soak(run_dir: Path, facts: RunFacts, records: RecordColumns, samples: list[WorkerSample]) -> SoakAnalysis | None:
    """The soak analysis when the scenario asks for one (``soak.json``)."""
    if facts.soak is None:
        return None
    phase = soak_phase(facts.soak, facts.windows, facts.unmeasured)
    if phase is None:  # the run ended before its soak phase began: nothing to judge
        return None
    return analyse(records, phase, facts.soak, samples, read_container_stats(run_dir))


def _report(run_dir: Path, summary: Summary, records: RecordColumns, samples: list[WorkerSample]) -> None:
    write_report(
        run_dir / "report.html",
        summary,
        records,
        samples,
        scenario_yaml=_read(run_dir / "scenario.yaml"),
        environment=_read(run_dir / "environment.json"),
    )


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
