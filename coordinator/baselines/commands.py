"""``finishline baseline``: save a run as a baseline, list and show them, import other tools' results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from coordinator.baselines.model import Baseline
from coordinator.baselines.store import DEFAULT_STORE, BaselineStore, check_name
from coordinator.console import ReadProgress
from coordinator.results.columns import COLUMNS_SUFFIX
from coordinator.results.identity import IDENTITY_FILE

F = TypeVar("F", bound=Callable[..., Any])


def store_option(help: str = "The directory baselines are kept in (commit it).") -> Callable[[F], F]:
    """``--store DIR``, as every command that reads or writes baselines takes it."""
    return click.option(
        "--store", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_STORE, show_default=True, help=help
    )


STORE_OPTION = store_option()


@click.group(
    epilog="\b\nExamples:\n  finishline baseline save runs/quickstart-20261201-101500-ab12cd --name main\n"
    "  finishline baseline list\n  finishline run examples/quickstart.yaml --baseline main"
)
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
    made, path = save_run(run_dir, name, description, store, force=force)
    steps = sum(1 for s in made.steps if s.workload == "all")
    click.echo(f"finishline: saved baseline {name} ({steps} steps, {made.tool.value}) in {path}")


def save_run(run_dir: Path, name: str, description: str, store: Path, *, force: bool = False) -> tuple[Baseline, Path]:
    """A finished run saved as a baseline in ``store``, with its records, scenario, environment
    and target beside it (``finishline baseline save`` and the service's POST /baselines)."""
    from coordinator.baselines.from_run import baseline_from_run

    check_name(name)
    made = baseline_from_run(run_dir, name, description)
    path = BaselineStore(store).save(
        made,
        files={
            "records.jsonl.gz": run_dir / "records.jsonl.gz",
            "records.jsonl.gz" + COLUMNS_SUFFIX: run_dir / ("records.jsonl.gz" + COLUMNS_SUFFIX),
            "scenario.yaml": run_dir / "scenario.yaml",
            "environment.json": run_dir / "environment.json",
            IDENTITY_FILE: run_dir / IDENTITY_FILE,
            "cold_start.json": run_dir / "cold_start.json",
        },
        force=force,
    )
    return made, path


@baseline.command(
    "import",
    epilog="\b\nExamples:\n  finishline baseline import benchmarks.json --name guidellm-c16\n"
    "  finishline baseline import profile_export_aiperf.json --name aiperf-c16 --records profile_export.jsonl\n"
    "  finishline baseline import card.yaml --name model-card",
)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--name", required=True, help="Letters, digits and _.-; what compare and run --baseline call it.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["guidellm", "vllm", "aiperf", "card"]),
    default=None,
    help="The file's format; told from its content when not given.",
)
@click.option(
    "--records",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="AIPerf's per-request profile_export.jsonl, when it does not lie beside the file.",
)
@click.option("--force", is_flag=True, help="Replace a baseline of the same name.")
@STORE_OPTION
def import_(file: Path, name: str, fmt: str | None, records: Path | None, force: bool, store: Path) -> None:
    """Import another tool's results (GuideLLM, vllm bench serve, AIPerf, a model card) as a
    baseline, in finishline's definitions (docs/baselines.md)."""
    from coordinator.baselines.importers import import_file

    check_name(name)
    with ReadProgress() as progress:
        imported = import_file(file, fmt, records, name=name, on_read=progress)
    made = imported.baseline
    path = BaselineStore(store).save(made, files=imported.sources, samples=imported.samples, force=force)
    with_records = sum(1 for s in made.steps if s.has_samples)
    click.echo(
        f"finishline: imported {file} as baseline {name} ({made.tool.value} {made.tool_version or ''}".rstrip()
        + f", {len(made.steps)} step{'s' if len(made.steps) != 1 else ''}, {with_records} with per-request data)"
        + f" in {path}"
    )
    for warning in made.warnings:
        click.echo(f"  warning: {warning}")


@baseline.command(
    "card-schema", epilog="\b\nExample:\n  finishline baseline card-schema --output docs/card.schema.json"
)
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to this file instead of stdout.")
def card_schema(output: Path | None) -> None:
    """Print the JSON Schema of a card YAML (docs/card.schema.json is generated by this)."""
    import sys

    from coordinator.baselines.importers.card import schema_json

    text = schema_json()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


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
