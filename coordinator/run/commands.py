"""``finishline run``: a scenario end to end, and what the console says about it."""

from __future__ import annotations

from pathlib import Path

import click

from coordinator.baselines.commands import store_option
from coordinator.results.outcome import EXIT_MEANINGS
from coordinator.scenario.commands import checked_scenario
from coordinator.scenario.models import Scenario

EXIT_CODES_HELP = (
    "\n\b\nExit codes (the console's last line and the report's verdict say the same):\n"
    + "".join(f"  {int(code):<4} {meaning}\n" for code, meaning in EXIT_MEANINGS.items())
    + "\n\b\nExamples:\n  finishline run examples/quickstart.yaml\n"
    "  finishline run examples/quickstart.yaml --set target.settings.step_overhead_s=0.011 --baseline main\n"
    "  finishline run examples/quickstart.yaml --web --baseline main\n"
)


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("scenario_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--web",
    is_flag=True,
    help="Open Locust's web UI on 127.0.0.1: Start runs the scenario's phases (other figures in the form: that "
    "load, as a phase of its own), Stop ends the run; an LLM tab shows the live LLM figures.",
)
@click.option("--output-dir", type=click.Path(path_type=Path, file_okay=False), help="Overrides output_dir.")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Replace one value of the scenario (dotted KEY, YAML VALUE), e.g. target.settings.step_overhead_s=0.011.",
)
@click.option(
    "--workers", type=click.IntRange(1, 64), help="N local Locust workers, in place of the scenario's workers."
)
@click.option("--no-live", is_flag=True, help="Plain progress lines instead of the live table.")
@click.option(
    "--baseline",
    help="At the end, compare with this baseline (a name in --store, or a run directory); a regression exits 1.",
)
@click.option(
    "--thresholds",
    type=click.Path(path_type=Path, dir_okay=False),
    help="With --baseline: limits per metric (docs/compare.md).",
)
@store_option("With --baseline: where baselines are kept.")
def run(
    scenario_file: Path,
    web: bool,
    output_dir: Path | None,
    sets: tuple[str, ...],
    workers: int | None,
    no_live: bool,
    baseline: str | None,
    thresholds: Path | None,
    store: Path,
) -> None:
    """Run a scenario: Locust master and workers, phases in order, results in a run directory. A
    scenario with a matrix: one such run per variant, then the variants side by side."""
    from coordinator.compare.gate import Gate, gate_run
    from coordinator.results.outcome import Outcome
    from coordinator.run.progress import fmt_ms
    from coordinator.run.runner import run_scenario

    overrides: dict[str, object] = {}
    if output_dir is not None:
        overrides["output_dir"] = str(output_dir)
    if workers is not None:
        overrides["workers"] = workers
    scenario = checked_scenario(scenario_file, overrides, sets)
    if thresholds is not None and baseline is None:
        raise click.UsageError("--thresholds needs --baseline")
    if scenario.matrix:
        if baseline is not None:
            raise click.UsageError("--baseline compares one run; compare each variant's run directory instead")
        if web:
            raise click.UsageError("--web drives one run; a scenario with a matrix runs one per variant")
        clean_abandoned()
        run_variants(scenario, scenario_file, live=False if no_live else None)
        return
    gate = Gate.read(baseline, store, thresholds) if baseline is not None else None  # bad input: before the run
    clean_abandoned()
    result = run_scenario(scenario, scenario_file, web=web, live=False if no_live else None)
    summary, outcome = result.summary, result.outcome
    click.echo(f"run directory: {result.run_dir}")
    if summary is not None:
        overall = summary.all
        ttft = overall.latency_ms.ttft
        answer = overall.latency_ms_answer
        ttfot = (
            f"TTFOT p50 {fmt_ms(answer.ttfot.p50)} ms p99 {fmt_ms(answer.ttfot.p99)} ms, "
            if answer is not None and overall.reasoning_tokens
            else ""  # without reasoning: the TTFT again
        )
        click.echo(
            f"{overall.count} requests, {overall.errors} errors, "
            f"TTFT p50 {fmt_ms(ttft.p50)} ms p99 {fmt_ms(ttft.p99)} ms, {ttfot}"
            f"{fmt_ms(overall.output_tokens_per_s)} output tok/s; report: {result.run_dir / 'report.html'}"
        )
    assert outcome is not None  # bad input raised before any outcome
    if gate is not None and summary is not None:
        gated = gate_run(gate, result.run_dir, summary, outcome)
        outcome = gated.outcome
        if gated.comparison is not None:
            click.echo(f"compared with {baseline}: {gated.comparison.headline}; {result.run_dir / 'compare.md'}")
    for reason in outcome.reasons[1:]:
        click.echo(f"  also: {reason}", err=True)
    if outcome.outcome is Outcome.PARTIAL:
        click.echo(f"  (details in {result.run_dir / 'logs'}; records so far are kept)", err=True)
    click.echo(f"finishline: {outcome.headline} (exit {outcome.exit_code})")
    click.get_current_context().exit(outcome.exit_code)


def run_variants(scenario: Scenario, scenario_file: Path, live: bool | None) -> None:
    """Every variant of the matrix, then the variants side by side and the worst one's exit code."""
    from coordinator.results.matrix import MATRIX_FILE, text_table
    from coordinator.run.matrix import run_matrix

    done = run_matrix(scenario, scenario_file, live=live, notify=lambda line: click.echo(f"finishline: {line}"))
    result = done.result
    click.echo(text_table(result))
    click.echo(f"matrix directory: {done.matrix_dir} ({MATRIX_FILE}; report: {done.matrix_dir / 'report.html'})")
    for reason in result.outcome.reasons[1:]:
        click.echo(f"  also: {reason}", err=True)
    click.echo(f"finishline: {result.headline} (exit {result.outcome.exit_code})")
    click.get_current_context().exit(result.outcome.exit_code)


def clean_abandoned() -> None:
    """Recover and clean up after killed runs (``finishline run`` does this first, too)."""
    from coordinator.run.ownership import clean as clean_up
    from coordinator.run.recover import recover_abandoned

    for line in clean_up(recover=recover_abandoned).lines():
        click.echo(f"finishline: {line}", err=True)


@click.command(epilog="\b\nExample:\n  finishline clean")
def clean() -> None:
    """Stop what killed runs left behind (processes, containers, temporary folders), after
    recovering what they measured into their run directories."""
    from coordinator.run.ownership import abandoned

    if not abandoned():
        click.echo("finishline: no killed run left anything behind")
    clean_abandoned()


@click.command(epilog="\b\nExample:\n  finishline recover runs/quickstart-20261201-101500-ab12cd")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
def recover(run_dir: Path) -> None:
    """Write the summary and report of a run whose coordinator was killed, from its records file
    and what its Redis still holds (marked recovered; exit 3)."""
    from coordinator.run.recover import recover as recover_run

    result = recover_run(run_dir)
    click.echo(f"finishline: {result.line()}")
    outcome = result.summary.outcome
    if outcome is not None:
        click.echo(f"finishline: {outcome.headline} (exit {outcome.exit_code})")
        click.get_current_context().exit(outcome.exit_code)
