"""A run's outcome: one verdict and one exit code, decided from what the run measured.

The console's last line, the report's verdict and the process's exit code all come from
:func:`decide`, so they always agree. When several things went wrong the most serious one
decides the code, in this order:

========================  ====  ===================================================================
outcome                   code  when
========================  ====  ===================================================================
``bad_input``             2     a scenario, option or file is wrong (nothing was measured)
``interrupted``           130   Ctrl-C or SIGTERM stopped the run, or ``--web``'s Stop before the
                                plan's end (``coordinator.run.web``); what was measured is kept
``partial``               3     records were lost, or a part of the run failed (a worker, Redis)
``requests_failed``       6     every measured request failed, or more than ``checks.max_error_rate``
``invalid``               4     the self-check found the client saturated: the figures are the client's
``slo_missed``            5     an SLO was missed and the scenario's ``slo.enforce`` is on
``drifting``              7     a soak (scenario section ``soak``) found a series drifting (docs/soak.md)
``regression``            1     worse than the baseline it was compared with
``ok``                    0     the run completed and met what it was asked to check
========================  ====  ===================================================================
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from loadgen.declaration import Spec

if TYPE_CHECKING:  # the summary carries an outcome; the outcome is judged from a summary
    from coordinator.results.summary import Summary


class Outcome(StrEnum):
    OK = "ok"
    REGRESSION = "regression"
    BAD_INPUT = "bad_input"
    PARTIAL = "partial"
    INVALID = "invalid"
    SLO_MISSED = "slo_missed"
    REQUESTS_FAILED = "requests_failed"
    INTERRUPTED = "interrupted"
    DRIFTING = "drifting"


class ExitCode(IntEnum):
    """The process exit code of each outcome (``finishline run``; ``compare`` uses 0, 1 and 2)."""

    OK = 0
    REGRESSION = 1
    BAD_INPUT = 2
    PARTIAL = 3
    INVALID = 4
    SLO_MISSED = 5
    REQUESTS_FAILED = 6
    DRIFTING = 7
    INTERRUPTED = 130


EXIT_MEANINGS: dict[ExitCode, str] = {  # what `finishline run --help` says of each
    ExitCode.OK: "the run completed and met what it was asked to check",
    ExitCode.REGRESSION: "a regression against the baseline it was compared with",
    ExitCode.BAD_INPUT: "bad input: a scenario, option or file is wrong",
    ExitCode.PARTIAL: "partial: records were lost or a part of the run failed (a worker, Redis)",
    ExitCode.INVALID: "invalid: the self-check found the load generator saturated",
    ExitCode.SLO_MISSED: "an SLO was missed and the scenario's slo.enforce is on",
    ExitCode.REQUESTS_FAILED: "requests failed: every one did, more than checks.max_error_rate, or the target went down",
    ExitCode.DRIFTING: "drifting: a soak found a series drifting beyond its limit (docs/soak.md)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C, SIGTERM, or --web's Stop before the plan's end); what was measured is kept",
}
EXIT_CODES: dict[Outcome, ExitCode] = {outcome: ExitCode[outcome.name] for outcome in Outcome}
SEVERITY: tuple[Outcome, ...] = (  # most serious first: the first that applies decides
    Outcome.BAD_INPUT,
    Outcome.INTERRUPTED,
    Outcome.PARTIAL,
    Outcome.REQUESTS_FAILED,
    Outcome.INVALID,
    Outcome.SLO_MISSED,
    Outcome.DRIFTING,
    Outcome.REGRESSION,
)


class Checks(Spec):
    """What a run must meet to exit 0, besides completing (scenario section ``checks``)."""

    max_error_rate: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="exit 6 when more than this share of measured requests failed; 1 (default): only when every one did",
    )
    abort_when_down_s: float | None = Field(
        default=10.0,
        gt=0,
        description="end the run early (exit 6) when every request failed for this long; null to never",
    )


class RunOutcome(BaseModel):
    """The verdict of a run: what decides the exit code, and every reason that applied."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: Outcome
    exit_code: int
    reasons: tuple[str, ...] = Field(description="one line per thing that went wrong, most serious first")
    slo_met: bool | None = Field(default=None, description="every SLO met at its percentile; None without SLOs or data")
    slo_enforced: bool = False

    @property
    def headline(self) -> str:
        """One line for the console and the report: the outcome and its first reason."""
        if self.outcome is Outcome.OK:
            return "OK: the run completed" + (" and met its SLOs" if self.slo_met else "")
        return f"{self.outcome.value.upper().replace('_', ' ')}: {self.reasons[0] if self.reasons else ''}".rstrip(": ")


def decide(found: dict[Outcome, list[str]], slo_met: bool | None = None, slo_enforced: bool = False) -> RunOutcome:
    """The outcome of a run from every problem found (outcome -> its reasons)."""
    ordered = [o for o in SEVERITY if found.get(o)]
    outcome = ordered[0] if ordered else Outcome.OK
    reasons = tuple(reason for o in ordered for reason in found[o])
    return RunOutcome(
        outcome=outcome,
        exit_code=int(EXIT_CODES[outcome]),
        reasons=reasons,
        slo_met=slo_met,
        slo_enforced=slo_enforced,
    )


def with_problem(run: RunOutcome, outcome: Outcome, reason: str) -> RunOutcome:
    """``run`` with one more problem found after it was judged (a regression against a baseline):
    the more serious outcome decides; the reasons stay in order of severity."""
    ours = SEVERITY.index(outcome)
    theirs = SEVERITY.index(run.outcome) if run.outcome in SEVERITY else len(SEVERITY)
    first = ours < theirs
    return RunOutcome(
        outcome=outcome if first else run.outcome,
        exit_code=int(EXIT_CODES[outcome]) if first else run.exit_code,
        reasons=(reason, *run.reasons) if first else (*run.reasons, reason),
        slo_met=run.slo_met,
        slo_enforced=run.slo_enforced,
    )


def judge(
    summary: Summary,
    checks: Checks,
    *,
    enforce_slo: bool = False,
    interrupted: str | None = None,
    failures: tuple[str, ...] = (),
    target_down: str | None = None,
    bad_input: str | None = None,
    drift: tuple[str, ...] = (),
) -> RunOutcome:
    """The outcome of a finished run from its summary and what the run knows about its own end.

    ``interrupted``: why it was stopped (a signal); ``failures``: parts that failed or records
    lost; ``target_down``: why the run ended early because every request failed; ``bad_input``: a
    user mistake found once the run had started.
    """
    found: dict[Outcome, list[str]] = {o: [] for o in Outcome}
    if bad_input:
        found[Outcome.BAD_INPUT].append(bad_input)
    if interrupted:
        found[Outcome.INTERRUPTED].append(interrupted)
    found[Outcome.PARTIAL].extend(failures)
    totals = summary.all
    if target_down:
        found[Outcome.REQUESTS_FAILED].append(target_down)
    elif totals.count == 0:
        if not interrupted and not failures:
            found[Outcome.REQUESTS_FAILED].append("no request was measured")
    elif totals.ok == 0:
        classes = ", ".join(f"{n} {cls}" for cls, n in totals.errors_by_class.items())
        found[Outcome.REQUESTS_FAILED].append(f"every one of {totals.count} requests failed ({classes})")
    elif totals.errors / totals.count > checks.max_error_rate:
        found[Outcome.REQUESTS_FAILED].append(
            f"{100 * totals.errors / totals.count:.1f}% of requests failed, more than checks.max_error_rate "
            f"{100 * checks.max_error_rate:g}%"
        )
    if not summary.valid:
        found[Outcome.INVALID].extend(summary.invalid_reasons or ("the self-check found the client saturated",))
    verdict = totals.slo
    slo_met = verdict.met if verdict is not None else None
    if enforce_slo and verdict is not None and verdict.met is False:
        for metric, check in verdict.checks.items():
            if check.met is False:
                value = "no data" if check.value_ms is None else f"{check.value_ms:,.1f} ms"
                found[Outcome.SLO_MISSED].append(
                    f"{metric.upper()} p{check.percentile:g} {value} > SLO {check.limit_ms:g} ms"
                )
    found[Outcome.DRIFTING].extend(drift)
    return decide(found, slo_met=slo_met, slo_enforced=enforce_slo)
