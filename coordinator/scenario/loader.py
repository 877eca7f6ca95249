"""Read a scenario file and report every problem with its line and field.

pydantic reports where a problem is as a path of keys and indexes; the YAML's composed
node tree maps that path back to the line the user wrote, so each problem reads
``scenario.yaml:12: phases[1].duration: Input should be greater than 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from coordinator.scenario.models import Scenario
from loadgen.errors import UserError, field_problems

# Keys holding paths that are resolved relative to the scenario file.
_PATH_KEYS = ("path", "corpus", "config", "context", "tokenizer")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a scenario file, printable as one line."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


def _locate(root: yaml.Node | None, loc: tuple[Any, ...], missing: bool = False) -> tuple[int | None, str]:
    """The line (1-based) of the deepest node along ``loc``, and the path as the user wrote it."""
    node = root
    line = None if root is None else root.start_mark.line + 1
    shown = ""
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            match = next((kv for kv in node.value if getattr(kv[0], "value", None) == part), None)
            if match is not None:
                key, value = match
                shown = f"{shown}.{part}" if shown else part
                line = key.start_mark.line + 1
                node = value
                continue
            if last and missing:  # a missing key: name it, point at its parent
                shown = f"{shown}.{part}" if shown else part
            continue  # a union tag or validator name pydantic adds: not in the file
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            shown += f"[{part}]"
            continue
    return line, shown or "(top level)"


def problems_from_validation(exc: ValidationError, root: yaml.Node | None, file: str) -> list[Problem]:
    out: list[Problem] = []
    seen: set[tuple[int | None, str, str]] = set()
    for problem in field_problems(exc):
        line, shown = _locate(root, problem.loc, missing=problem.kind == "missing")
        if problem.kind in ("union_tag_not_found", "union_tag_invalid"):
            shown = f"{shown}.kind" if shown != "(top level)" else "kind"
        key = (line, shown, problem.message)
        if key not in seen:
            seen.add(key)
            out.append(Problem(file, line, shown, problem.message))
    return out


def _resolve_paths(data: Any, base: Path) -> Any:
    """Make relative file paths relative to the scenario file's directory (not the shell's)."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key in _PATH_KEYS and isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                out[key] = str(base / value)
            else:
                out[key] = _resolve_paths(value, base)
        return out
    if isinstance(data, list):
        return [_resolve_paths(v, base) for v in data]
    return data


def parse(text: str, file: str, base: Path) -> tuple[Scenario | None, list[Problem], Any]:
    """Validate YAML text; returns the scenario (or None), the problems, and the raw data."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # a control character: not a text YAML can hold
        line = text.count("\n", 0, exc.position) + 1
        return None, [Problem(file, line, "", f"not valid YAML: character #x{exc.character:04x}: {exc.reason}")], None
    try:  # one parse: the node tree locates problems, the data built from it is validated
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = None if mark is None else mark.line + 1
        return None, [Problem(file, line, "", f"not valid YAML: {exc.problem}")], None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        return None, [Problem(file, 1, "", "a scenario is a mapping of keys (name, target, workloads, phases)")], data
    try:
        scenario = Scenario.model_validate(_resolve_paths(data, base))
    except ValidationError as exc:
        return None, problems_from_validation(exc, root, file), data
    return scenario, [], data


def validate_file(path: str | Path) -> tuple[Scenario | None, list[Problem]]:
    """Every problem of a scenario file (empty list when it is valid)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        return None, [Problem(str(path), None, "", f"cannot read the file: {exc.strerror}")]
    except UnicodeDecodeError:
        return None, [Problem(str(path), None, "", "not a text file; a scenario is YAML")]
    scenario, problems, _ = parse(text, str(path), path.resolve().parent)
    return scenario, problems


def load_scenario(path: str | Path) -> Scenario:
    """The validated scenario, or a ``UserError`` naming the first problem (and how many more)."""
    scenario, problems = validate_file(path)
    if problems:
        more = len(problems) - 1
        suffix = f" (and {more} more; run `finishline validate {path}`)" if more else ""
        raise UserError(f"{problems[0]}{suffix}")
    assert scenario is not None
    return scenario
