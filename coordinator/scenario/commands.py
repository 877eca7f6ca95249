"""``finishline validate``: the scenario file checked (``finishline schema`` is ``coordinator.schemas``)."""

from __future__ import annotations

from pathlib import Path

import click

from coordinator.scenario.loader import validate_file
from coordinator.scenario.models import Scenario
from coordinator.scenario.overrides import Override, OverrideError


def checked_scenario(path: Path, overrides: dict[str, object] | None = None, sets: tuple[str, ...] = ()) -> Scenario:
    """Validate (with ``--set`` values and command-line ``overrides`` of top-level keys); print
    every problem on its own line and exit 2 if there is any."""
    try:
        parsed = [Override.parse(text) for text in sets]
    except OverrideError as exc:
        raise click.BadParameter(str(exc).removeprefix("--set "), param_hint="--set") from None
    scenario, problems = validate_file(path, overrides, parsed)
    if problems:
        for problem in problems:
            click.echo(f"finishline: {problem}", err=True)
        click.get_current_context().exit(2)
    assert scenario is not None
    return scenario


@click.command(epilog="\b\nExample:\n  finishline validate examples/quickstart.yaml")
@click.argument("scenario_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Replace one value, as `finishline run --set`.")
def validate(scenario_file: Path, sets: tuple[str, ...]) -> None:
    """Check a scenario file; print every problem with its line and field (exit 2), and the
    variants of its matrix."""
    from coordinator.scenario.matrix import variants

    scenario = checked_scenario(scenario_file, sets=sets)
    click.echo(f"{scenario_file}: valid ({scenario.name})")
    found = variants(scenario)
    if found:
        click.echo(f"matrix: {len(found)} variants, each a run of its own:")
        for variant in found:
            click.echo(f"  {variant.name}")
