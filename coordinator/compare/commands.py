"""``finishline compare CURRENT BASELINE``: the verdict, in the format asked for, and its exit code.

Exit codes: 0 no regression, 1 a regression, 2 bad input (a missing baseline, an unreadable
run directory, a bad thresholds file: one line, no traceback).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from coordinator.baselines.commands import store_option

FORMATS = ("text", "md", "html", "json")

EPILOG = """
\b
CURRENT and BASELINE: a run directory, a baseline's folder, another tool's result file, or a baseline's name in the store.
Exit codes: 0 no regression, 1 regression, 2 bad input. Definitions, defaults: docs/compare.md.

\b
Examples:
  finishline compare runs/quickstart-20261201-101500-ab12cd quickstart-main
  finishline compare runs/new runs/old --thresholds thresholds.yaml --format md --output comment.md
"""


@click.command(epilog=EPILOG)
@click.argument("current")
@click.argument("baseline")
@click.option(
    "--thresholds",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Limits per metric (YAML or JSON; docs/thresholds.schema.json).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write here instead of stdout.")
@store_option("Where baseline names are looked up.")
def compare(current: str, baseline: str, thresholds: Path | None, fmt: str, output: Path | None, store: Path) -> None:
    """Compare a run with a baseline: per step and metric, the delta, its confidence interval and a verdict."""
    from coordinator.compare.comparison import compare as compare_sides
    from coordinator.compare.render import render
    from coordinator.compare.sides import resolve
    from coordinator.compare.thresholds import read_thresholds
    from coordinator.console import ReadProgress
    from loadgen.errors import UserError

    limits = read_thresholds(thresholds)
    with ReadProgress() as progress:  # another tool's large file shows its reading
        current_side = resolve(current, store, on_read=progress)
        baseline_side = resolve(baseline, store, on_read=progress)
    result = compare_sides(current_side, baseline_side, limits)
    page = render(result, fmt, current_side, baseline_side)
    if output is None:
        sys.stdout.write(page)
    else:
        try:
            output.write_text(page)
        except OSError as exc:
            raise UserError(f"--output: cannot write {output} ({exc.strerror})") from None
        click.echo(f"finishline: {result.headline} (exit {result.exit_code}); {fmt} in {output}", err=True)
    click.get_current_context().exit(result.exit_code)
