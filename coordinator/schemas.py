"""``finishline schema``: the JSON Schema of each file a user writes or keeps (the files in
``docs/``), and the scenario's reference in Markdown made from it.

It sits in the top layer because the documents it describes are defined in several layers
(the scenario, the summary, the thresholds file, a comparison).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    "  finishline schema --soak --output docs/soak.schema.json\n"
    "  finishline schema --markdown --output docs/scenario-reference.md"
)
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to this file instead of stdout.")
@click.option("--summary", "document", flag_value="summary", help="A run's summary.json.")
@click.option("--matrix", "document", flag_value="matrix", help="A matrix's matrix.json.")
@click.option("--thresholds", "document", flag_value="thresholds", help="A thresholds file of compare.")
@click.option("--compare", "document", flag_value="compare", help="compare --format json (and a run's compare.json).")
@click.option("--soak", "document", flag_value="soak", help="A soak's soak.json (scenario section soak).")
@click.option("--markdown", is_flag=True, help="The reference in Markdown (docs/scenario-reference.md), not JSON.")
def schema(output: Path | None, document: str | None, markdown: bool) -> None:
    """Print the scenario file's JSON Schema, or another file's (--summary, --matrix, --thresholds, --compare, --soak)."""
    text = _schema_json(document or "scenario")
    if markdown:
        title = "Scenario reference" if document is None else f"{document} file reference"
        text = markdown_reference(json.loads(text), title)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


# -- the scenario reference (docs/scenario-reference.md) ----------------------------------------


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _type(node: dict[str, Any]) -> str:
    """A field's type as a reader says it, each model a link to its own section."""
    if "$ref" in node:
        name = str(node["$ref"]).rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for key in ("oneOf", "anyOf"):
        if key in node:
            return " or ".join(_type(option) for option in node[key])
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in node["enum"])
    kind = node.get("type")
    if isinstance(kind, list):
        return " or ".join(_type({**node, "type": one}) for one in kind)
    if kind == "array":
        return f"list of {_type(node.get('items', {}))}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"mapping of string to {_type(node['additionalProperties'])}"
    return str(kind or "any")


_LIMITS = (
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("minLength", "length ≥ {}"),
    ("maxLength", "length ≤ {}"),
    ("minItems", "items ≥ {}"),
    ("pattern", "matches `{}`"),
)


def _limits(node: dict[str, Any]) -> str:
    found = [text.format(node[key]) for key, text in _LIMITS if key in node]
    for option in node.get("anyOf", []):  # an optional number's limits sit on its non-null option
        found += [text.format(option[key]) for key, text in _LIMITS if key in option]
    return ", ".join(found)


def _model(name: str, node: dict[str, Any]) -> list[str]:
    lines = [f"## {name}", ""]
    if node.get("description"):
        lines += [" ".join(str(node["description"]).split()), ""]
    properties: dict[str, dict[str, Any]] = node.get("properties", {})
    if not properties:
        return lines
    required = set(node.get("required", []))
    lines += ["| key | type | default | limits | meaning |", "|---|---|---|---|---|"]
    for key, field in properties.items():
        default = "required" if key in required else f"`{json.dumps(field['default'])}`" if "default" in field else ""
        meaning = _cell(str(field.get("description", "")))
        lines.append(f"| `{key}` | {_type(field)} | {_cell(default)} | {_cell(_limits(field))} | {meaning} |")
    return [*lines, ""]


def markdown_reference(schema: dict[str, Any], title: str) -> str:
    """Every model of a JSON Schema as a section with a table of its keys: type, default, limits
    and meaning, as the models define them (so the reference cannot drift from the code)."""
    lines = [
        f"# {title}",
        "",
        "Generated from the models by `finishline schema --markdown --output docs/scenario-reference.md`;",
        "a test checks it is current. The guide with examples is [scenario.md](scenario.md).",
        "",
        *_model("Scenario", schema),
    ]
    for name, node in sorted(schema.get("$defs", {}).items()):
        lines += _model(name, node)
    return "\n".join(lines).rstrip() + "\n"
