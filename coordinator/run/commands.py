"""``finishline run``: a scenario end to end, and what the console says about it."""

from __future__ import annotations

from pathlib import Path

import click

from coordinator.scenario.commands import checked_scenario


@click.command()
@click.argument("scenario_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--web", is_flag=True, help="Open Locust's web UI on 127.0.0.1 and let it drive the users.")
@click.option("--output-dir", type=click.Path(path_type=Path, file_okay=False), help="Overrides output_dir.")
@click.option("--workers", type=click.IntRange(1, 64), help="Overrides the number of Locust workers.")
@click.option("--no-live", is_flag=True, help="Plain progress lines instead of the live table.")
def run(scenario_file: Path, web: bool, output_dir: Path | None, workers: int | None, no_live: bool) -> None:
    """Run a scenario: Locust master and workers, phases in order, results in a run directory."""
    from coordinator.results.status import RunStatus
    from coordinator.run.progress import fmt_ms
    from coordinator.run.runner import run_scenario

    scenario = checked_scenario(scenario_file)
    updates: dict[str, object] = {}
    if output_dir is not None:
        updates["output_dir"] = output_dir
    if workers is not None:
        updates["workers"] = workers
    if updates:
        scenario = scenario.model_copy(update=updates)
    result = run_scenario(scenario, scenario_file, web=web, live=False if no_live else None)
    summary = result.summary
    click.echo(f"run directory: {result.run_dir}")
    if result.status == RunStatus.PARTIAL:
        click.echo(f"partial result ({result.reason}); records so far are kept", err=True)
    if summary is not None:
        for reason in summary.invalid_reasons:
            click.echo(f"INVALID: {reason}", err=True)
        overall = summary.all
        ttft = overall.latency_ms.ttft
        click.echo(
            f"{overall.count} requests, {overall.errors} errors, "
            f"TTFT p50 {fmt_ms(ttft.p50)} ms p99 {fmt_ms(ttft.p99)} ms, "
            f"{fmt_ms(overall.output_tokens_per_s)} output tok/s; report: {result.run_dir / 'report.html'}"
        )
    if result.status == RunStatus.PARTIAL:
        interrupted = (result.reason or "").startswith("interrupted")
        if not interrupted:
            click.echo(f"finishline: the run failed: {result.reason} (details in {result.run_dir / 'logs'})", err=True)
        click.get_current_context().exit(130 if interrupted else 1)
