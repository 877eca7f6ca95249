"""``finishline baseline``: save a run as a baseline, list and show them, import other tools' results."""

from __future__ import annotations

from pathlib import Path

import click

from coordinator.baselines.store import DEFAULT_STORE, BaselineStore, check_name

STORE_OPTION = click.option(
    "--store",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_STORE,
    show_default=True,
    help="The directory baselines are kept in (commit it).",
)


@click.group()
def baseline() -> None:
    """Keep runs (or other tools' results) as baselines that later runs are compared with."""


@baseline.command(
    epilog="\b\nExample:\n  finishline baseline save runs/quickstart-20261201-101500-ab12cd --name quickstart-main"
)
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--name", required=True, help="Letters, digits and _.-; what compare and run --baseline call it.")
@click.option("--description", default="", help="A line on what this baseline is.")
@click.option("--force", is_flag=True, help="Replace a baseline of the same name.")
@STORE_OPTION
def save(run_dir: Path, name: str, description: str, force: bool, store: Path) -> None:
    """Save a finished run as a baseline: its summary, records, scenario, environment and target."""
    from coordinator.baselines.from_run import baseline_from_run

    check_name(name)
    made = baseline_from_run(run_dir, name, description)
    path = BaselineStore(store).save(
        made,
        files={
            "records.jsonl.gz": run_dir / "records.jsonl.gz",
            "scenario.yaml": run_dir / "scenario.yaml",
            "environment.json": run_dir / "environment.json",
            "target.json": run_dir / "target.json",
            "cold_start.json": run_dir / "cold_start.json",
        },
        force=force,
    )
    steps = sum(1 for s in made.steps if s.workload == "all")
    click.echo(f"finishline: saved baseline {name} ({steps} steps, {made.tool.value}) in {path}")


@baseline.command("list", epilog="\b\nExample:\n  finishline baseline list --store baselines")
@STORE_OPTION
def list_baselines(store: Path) -> None:
    """Every baseline of the store: name, tool, when, source, steps."""
    found = BaselineStore(store).all()
    if not found:
        click.echo(f"finishline: no baselines in {store}")
        return
    for item in found:
        b = item.baseline
        steps = sum(1 for s in b.steps if s.workload == "all")
        click.echo(f"{b.name:<32} {b.tool.value:<10} {b.created:%Y-%m-%d %H:%M} {steps:>3} steps  {b.source}")


@baseline.command(epilog="\b\nExample:\n  finishline baseline show quickstart-main")
@click.argument("name")
@STORE_OPTION
def show(name: str, store: Path) -> None:
    """A baseline's target, steps and headline figures."""
    item = BaselineStore(store).get(name)
    b = item.baseline
    click.echo(f"{b.name}: {b.tool.value} {b.tool_version or ''}, saved {b.created:%Y-%m-%d %H:%M} UTC from {b.source}")
    if b.description:
        click.echo(f"  {b.description}")
    t = b.target
    what = ", ".join(
        f"{k} {v}" for k, v in (("kind", t.kind), ("model", t.model), ("image", t.image), ("server", t.server)) if v
    )
    click.echo(f"  target: {what or 'unknown'}")
    for step in b.steps:
        if step.workload != "all":
            continue
        load = f"{step.load.kind.value} {step.load.value:g}" if step.load and step.load.value is not None else "-"
        figures = []
        for metric, stat in (("ttft", "p50"), ("ttft", "p99"), ("tpot", "p50"), ("output_tokens_per_s", "mean")):
            value = step.metrics[metric].at(stat) if metric in step.metrics else None
            if value is not None:
                figures.append(f"{metric} {stat} {value:,.1f}")
        click.echo(
            f"  step {step.name} ({load}): {step.requests} requests, {step.errors} errors; " + "; ".join(figures)
        )
    for warning in b.warnings:
        click.echo(f"  warning: {warning}")
