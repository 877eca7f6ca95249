"""Read a scenario file and report every problem with its line and field.

pydantic reports where a problem is as a path of keys and indexes; the YAML's composed
node tree maps that path back to the line the user wrote, so each problem reads
``scenario.yaml:12: phases[1].duration: Input should be greater than 0``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from coordinator.scenario.matrix import MatrixError, variants
from coordinator.scenario.models import Scenario
from coordinator.scenario.overrides import Override, OverrideError
from coordinator.scenario.phases import ReplayPhase
from loadgen.errors import UserError, field_problems
from loadgen.prompts import load_source
from loadgen.replay import window_rows
from loadgen.spec import TracePrompt
from loadgen.traces import read_trace

# Keys holding paths that are resolved relative to the scenario file.
PATH_KEYS = ("path", "corpus", "config", "context", "tokenizer")


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


def _resolved(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
        return str(base / value)
    return value


def _resolve_paths(data: Any, base: Path) -> Any:
    """Make relative file paths relative to the scenario file's directory (not the shell's)."""
    if isinstance(data, dict):
        return {
            key: _resolved(value, base) if key in PATH_KEYS and isinstance(value, str) else _resolve_paths(value, base)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_resolve_paths(v, base) for v in data]
    return data


def _resolve_matrix(data: dict[Any, Any], base: Path) -> dict[Any, Any]:
    """The matrix's values of an axis ending in a path key (``target.config``), resolved the same way."""
    matrix = data.get("matrix")
    if not isinstance(matrix, dict):
        return data
    resolved = {
        axis: [_resolved(v, base) for v in values]
        if isinstance(axis, str) and axis.rsplit(".", 1)[-1] in PATH_KEYS and isinstance(values, list)
        else values
        for axis, values in matrix.items()
    }
    return {**data, "matrix": resolved}


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    return _locate(root, loc)[0]


def output_dir_problem(path: Path) -> str | None:
    """Why run directories cannot be made under ``path``, or None when they can."""
    path = path.expanduser()
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a directory; name a directory"
    probe = path
    while not probe.exists():  # the nearest existing folder decides whether it can be created
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, so {path} cannot be created; name a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable; choose another directory or fix its permissions"
    return None


def data_problems(scenario: Scenario, root: yaml.Node | None, file: str) -> list[Problem]:
    """What the scenario names on disk, read now rather than halfway through a run: every
    dataset and trace line by line, each replay's window, and the output directory."""
    out: list[Problem] = []
    for i, workload in enumerate(scenario.workloads):
        try:
            load_source(workload.prompt, f"workloads[{i}].prompt")
        except UserError as exc:
            field, _, message = str(exc).partition(": ")
            out.append(Problem(file, _line_of(root, ("workloads", i, "prompt", "path")), field, message))
    for i, phase in enumerate(scenario.phases):
        if isinstance(phase, ReplayPhase):
            out.extend(_replay_problems(scenario, phase, i, root, file))
    problem = output_dir_problem(scenario.output_dir)
    if problem is not None:
        out.append(Problem(file, _line_of(root, ("output_dir",)), "output_dir", problem))
    return out


def _replay_problems(
    scenario: Scenario, phase: ReplayPhase, i: int, root: yaml.Node | None, file: str
) -> list[Problem]:
    """A replay whose window holds no row of its trace would send nothing: say so now."""
    workload = phase.trace_workload(scenario.workloads)
    assert isinstance(workload.prompt, TracePrompt)
    try:
        rows = read_trace(workload.prompt, f"workloads[{scenario.workloads.index(workload)}].prompt.path")
    except UserError:  # reported with the workload's prompt
        return []
    if window_rows([row.time for row in rows], phase.replay_command(scenario.workloads)):
        return []
    span = rows[-1].time - rows[0].time
    message = (
        f"the window holds no row of {workload.prompt.path} (its rows span {span:g} s); move start or widen duration"
    )
    return [Problem(file, _line_of(root, ("phases", i, "start")), f"phases[{i}]", message)]


def parse(
    text: str,
    file: str,
    base: Path,
    overrides: dict[str, Any] | None = None,
    screen: Callable[[dict[Any, Any]], None] | None = None,
    sets: Sequence[Override] = (),
) -> tuple[Scenario | None, list[Problem], Any]:
    """Validate YAML text (with ``sets``, ``--set`` values, applied to it, then ``overrides`` of
    top-level keys, e.g. from the command line); returns the scenario (or None), the problems,
    and the raw data. ``screen`` sees the raw mapping before validation opens any file it names,
    and may raise to refuse it."""
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
        at = None if mark is None else mark.line + 1
        return None, [Problem(file, at, "", f"not valid YAML: {exc.problem}")], None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        return None, [Problem(file, 1, "", "a scenario is a mapping of keys (name, target, workloads, phases)")], data
    for override in sets:
        try:
            override.apply(data)
        except OverrideError as exc:
            return None, [Problem(file, None, "", str(exc))], data
    if screen is not None:
        screen(data)
    try:
        scenario = Scenario.model_validate({**_resolve_matrix(_resolve_paths(data, base), base), **(overrides or {})})
    except ValidationError as exc:
        return None, problems_from_validation(exc, root, file), data
    problems = data_problems(scenario, root, file) or matrix_problems(scenario, root, file)
    return (None if problems else scenario), problems, data


def matrix_problems(scenario: Scenario, root: yaml.Node | None, file: str) -> list[Problem]:
    """The first variant of the matrix that is not a valid scenario, at its axis's line."""
    try:
        variants(scenario)
    except MatrixError as exc:
        loc: tuple[str, ...] = ("matrix",) if exc.axis is None else ("matrix", exc.axis)
        field = "matrix" if exc.axis is None else f"matrix.{exc.axis}"
        return [Problem(file, _line_of(root, loc), field, exc.message)]
    return []


def validate_file(
    path: str | Path, overrides: dict[str, Any] | None = None, sets: Sequence[Override] = ()
) -> tuple[Scenario | None, list[Problem]]:
    """Every problem of a scenario file (empty list when it is valid)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        return None, [Problem(str(path), None, "", f"cannot read the file: {exc.strerror}")]
    except UnicodeDecodeError:
        return None, [Problem(str(path), None, "", "not a text file; a scenario is YAML")]
    scenario, problems, _ = parse(text, str(path), path.resolve().parent, overrides, sets=sets)
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
