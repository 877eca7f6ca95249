"""What a matrix found (``matrix.json``): each variant's values, outcome and headline figures per
phase, side by side, and the console's table of them (the report page: ``matrix_report``).

A matrix's directory holds ``variants/<variant>/``, each a complete run directory (its own
``summary.json``, ``report.html`` and records, so ``finishline compare`` and ``baseline save``
take one as they take any run), and beside them ``matrix.json`` and ``report.html``. The
figures here are copied from each variant's summary, never recomputed: the whole run's
(``all``, warm-ups left out) and each measured phase's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coordinator.results.outcome import Outcome, RunOutcome, decide
from coordinator.results.summary import ALL, GroupSummary, Summary

MATRIX_FILE = "matrix.json"
VARIANTS_DIR = "variants"
MATRIX_VERSION: Literal[1] = 1
SCHEMA_ID = "https://finishline.dev/matrix.schema.json"

MatrixValue = str | int | float | bool  # what a matrix axis lists (coordinator.scenario.matrix)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PhaseFigures(_Model):
    """A phase's headline figures, as its variant's summary has them (latencies in ms, successful requests)."""

    requests: int = Field(ge=0)
    errors: int = Field(ge=0)
    error_rate: float | None = Field(description="failed requests / requests; None without requests")
    requests_per_s: float | None
    output_tokens_per_s: float | None
    goodput_per_s: float | None = Field(description="requests/s that succeeded and met every SLO")
    goodput_share: float | None
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    tpot_p50_ms: float | None
    tpot_p99_ms: float | None

    @classmethod
    def of(cls, group: GroupSummary) -> PhaseFigures:
        lat = group.latency_ms
        return cls(
            requests=group.count,
            errors=group.errors,
            error_rate=group.errors / group.count if group.count else None,
            requests_per_s=group.requests_per_s,
            output_tokens_per_s=group.output_tokens_per_s,
            goodput_per_s=group.goodput.per_s,
            goodput_share=group.goodput.share,
            ttft_p50_ms=lat.ttft.p50,
            ttft_p99_ms=lat.ttft.p99,
            tpot_p50_ms=lat.tpot.p50,
            tpot_p99_ms=lat.tpot.p99,
        )


class VariantResult(_Model):
    """One variant: what it set, where its run directory is, how it ended and what it measured."""

    name: str
    values: dict[str, MatrixValue] = Field(description="axis (a dotted path into the scenario) -> its value")
    run_dir: str = Field(description="its run directory, relative to the matrix's (variants/<name>)")
    run_id: str | None = Field(default=None, description="None when it did not run")
    outcome: RunOutcome | None = Field(default=None, description="its run's verdict; None when it did not run")
    phases: dict[str, PhaseFigures] = Field(
        default_factory=dict, description=f"'{ALL}' (the whole run, warm-ups left out), then each measured phase"
    )

    @property
    def ran(self) -> bool:
        return self.outcome is not None


class MatrixResult(_Model):
    """``matrix.json``: the variants side by side, and the verdict of the whole (the worst variant's)."""

    version: Literal[1] = Field(default=MATRIX_VERSION, description="the format's version")
    id: str
    scenario: str
    axes: dict[str, list[MatrixValue]]
    variants: list[VariantResult] = Field(description="in the order they ran (the first axis varies slowest)")
    outcome: RunOutcome = Field(description="the most serious of the variants' outcomes decides the exit code")

    @property
    def headline(self) -> str:
        """One line for the console and the report: the outcome and its first reason."""
        if self.outcome.outcome is Outcome.OK:
            every = "the variant" if len(self.variants) == 1 else f"all {len(self.variants)} variants"
            return f"OK: {every} completed" + (" and met their SLOs" if self.outcome.slo_met else "")
        return self.outcome.headline

    def phase_names(self) -> list[str]:
        """The phases to show: ``all`` then every phase any variant measured, in the order they ran;
        ``all`` left out where a single phase was measured (it would repeat that phase)."""
        names: list[str] = []
        for variant in self.variants:
            names += [name for name in variant.phases if name not in names]
        return [name for name in names if name != ALL] if len(names) == 2 else names


def variant_result(
    name: str,
    values: dict[str, MatrixValue],
    run_dir: str,
    run_id: str | None = None,
    outcome: RunOutcome | None = None,
    summary: Summary | None = None,
) -> VariantResult:
    """A variant's entry, its figures taken from its summary (none when it wrote none)."""
    phases: dict[str, PhaseFigures] = {}
    if summary is not None:
        phases[ALL] = PhaseFigures.of(summary.all)
        for phase in summary.phases_order:
            if phase not in summary.unmeasured_phases:
                phases[phase] = PhaseFigures.of(summary.phases[phase])
    return VariantResult(name=name, values=values, run_dir=run_dir, run_id=run_id, outcome=outcome, phases=phases)


def matrix_outcome(variants: Sequence[VariantResult], not_run_because: str | None = None) -> RunOutcome:
    """The matrix's verdict: every variant's reasons, named, the most serious first; variants left
    unrun (an interruption) count as interrupted."""
    found: dict[Outcome, list[str]] = {}
    for variant in variants:
        if variant.outcome is not None and variant.outcome.outcome is not Outcome.OK:
            first = variant.outcome.reasons[0] if variant.outcome.reasons else variant.outcome.outcome.value
            found.setdefault(variant.outcome.outcome, []).append(f"variant {variant.name}: {first}")
    left = [v.name for v in variants if not v.ran]
    if left:
        found.setdefault(Outcome.INTERRUPTED, []).append(
            f"{not_run_because or 'stopped'}: {len(left)} variant{'s' if len(left) > 1 else ''} not run ({', '.join(left)})"
        )
    met = [v.outcome.slo_met for v in variants if v.outcome is not None]
    slo_met = False if False in met else (True if met and all(m is True for m in met) else None)
    enforced = any(v.outcome.slo_enforced for v in variants if v.outcome is not None)
    return decide(found, slo_met=slo_met, slo_enforced=enforced)


# (heading, unit, the figure) of each column of the tables
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("req/s", "", "requests_per_s"),
    ("out tok/s", "", "output_tokens_per_s"),
    ("goodput/s", "", "goodput_per_s"),
    ("errors", "%", "error_rate"),
    ("TTFT p50", "ms", "ttft_p50_ms"),
    ("TTFT p99", "ms", "ttft_p99_ms"),
    ("TPOT p50", "ms", "tpot_p50_ms"),
    ("TPOT p99", "ms", "tpot_p99_ms"),
)


def cell(figures: PhaseFigures | None, attr: str) -> str:
    value = None if figures is None else getattr(figures, attr)
    if value is None:
        return "–"
    if attr == "error_rate":
        return f"{100 * value:.1f}"
    return f"{value:,.2f}" if attr in ("requests_per_s", "goodput_per_s") else f"{value:,.1f}"


def status(variant: VariantResult) -> str:
    return "not run" if variant.outcome is None else variant.outcome.outcome.value


def text_table(result: MatrixResult) -> str:
    """The variants side by side, one block per phase, for the console."""
    lines: list[str] = []
    for phase in result.phase_names():
        head = ["variant", "outcome", *(f"{h} {u}".strip() for h, u, _ in COLUMNS)]
        rows = [
            [v.name, status(v), *(cell(v.phases.get(phase), attr) for _, _, attr in COLUMNS)] for v in result.variants
        ]
        widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

        def line(cells: Sequence[str], widths: Sequence[int] = widths) -> str:
            return "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )

        title = "whole run (warm-ups left out)" if phase == ALL else f"phase {phase}"
        lines += [title, line(head), *(line(row) for row in rows), ""]
    return "\n".join(lines).rstrip() + "\n"


def read_matrix(path: Path) -> MatrixResult:
    """A matrix's ``matrix.json``."""
    return MatrixResult.model_validate_json(path.read_bytes())


def schema_json() -> str:
    """``docs/matrix.schema.json`` (``finishline schema --matrix``)."""
    schema = MatrixResult.model_json_schema(mode="validation")
    return (
        json.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}, indent=2)
        + "\n"
    )
