"""``finishline schema``: the JSON Schema of each file a user writes or keeps (the files in ``docs/``).

It sits in the top layer because the documents it describes are defined in several layers
(the scenario, the summary, the thresholds file, a comparison).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click


def _schema_json(document: str) -> str:
    if document == "summary":
        from coordinator.results.schema import schema_json
    elif document == "matrix":
        from coordinator.results.matrix import schema_json
    elif document == "thresholds":
        from coordinator.compare.thresholds import schema_json
    elif document == "compare":
        from coordinator.compare.result import schema_json
    elif document == "soak":
        from coordinator.results.soak import schema_json
    else:
        from coordinator.scenario.schema import schema_json
    produce: Callable[[], str] = schema_json
    return produce()


@click.command(
    epilog="\b\nExample (an editor's completion for scenario files):\n"
    "  finishline schema --output scenario.schema.json\n"
    "\b\nThe files in docs/ are made by:\n"
    "  finishline schema --output docs/scenario.schema.json\n"
    "  finishline schema --summary --output docs/summary.schema.json\n"
    "  finishline schema --matrix --output docs/matrix.schema.json\n"
    "  finishline schema --thresholds --output docs/thresholds.schema.json\n"
    "  finishline schema --compare --output docs/compare.schema.json\n"
    "  finishline schema --soak --output docs/soak.schema.json"
)
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to this file instead of stdout.")
@click.option("--summary", "document", flag_value="summary", help="A run's summary.json.")
@click.option("--matrix", "document", flag_value="matrix", help="A matrix's matrix.json.")
@click.option("--thresholds", "document", flag_value="thresholds", help="A thresholds file of compare.")
@click.option("--compare", "document", flag_value="compare", help="compare --format json (and a run's compare.json).")
@click.option("--soak", "document", flag_value="soak", help="A soak's soak.json (scenario section soak).")
def schema(output: Path | None, document: str | None) -> None:
    """Print the scenario file's JSON Schema, or another file's (--summary, --matrix, --thresholds, --compare, --soak)."""
    text = _schema_json(document or "scenario")
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
