"""A scenario's ``matrix``: the same workloads and phases against several variants of the target.

``matrix`` maps dotted paths into the scenario (``target.settings.max_num_seqs``,
``target.environment.LLAMA_PARALLEL``, ``target.memory``, ``phases.0.users``: a number is a
list index) to the values each takes. The variants are the cartesian product of the axes, in
the order they are written; each is the scenario with its values set, validated as a whole
scenario, so a wrong path or value is one line before anything starts. A variant's name is
made of its values (``max_num_seqs=8``, ``LLAMA_PARALLEL=4,memory=2g``) and names its run
directory, so it holds only characters safe in a file name.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from coordinator.results.matrix import MatrixValue
from loadgen.errors import field_path, field_problems

if TYPE_CHECKING:  # a variant is a scenario; the scenario's matrix field is checked here
    from coordinator.scenario.models import Scenario

MAX_VARIANTS = 64  # more is almost certainly a mistake: each variant is a whole run
AXIS = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*")
# What a variant may not change: the matrix itself, the name its runs are filed under, and
# where they go (every variant's directory is under the matrix's own).
FIXED = {"matrix": "the matrix", "name": "the scenario's name", "output_dir": "where the runs go"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+-]+")
NAME_LIMIT = 100


class MatrixError(ValueError):
    """A matrix that cannot be expanded, or a variant that is not a valid scenario; ``axis``: the
    path to blame (None: the matrix as a whole)."""

    def __init__(self, axis: str | None, message: str) -> None:
        super().__init__(message)
        self.axis = axis
        self.message = message


@dataclass(frozen=True)
class Variant:
    """One variant: its name, the value of each axis, and the scenario it runs."""

    name: str
    values: dict[str, MatrixValue]
    scenario: Scenario


def check_axes(matrix: Mapping[str, Sequence[MatrixValue]]) -> None:
    """The axes as written: dotted paths, none fixed, none inside another, distinct values, not too many."""
    for axis, values in matrix.items():
        if not AXIS.fullmatch(axis):
            raise ValueError(
                f"{axis!r} is not a dotted path; write e.g. target.settings.max_num_seqs or phases.0.users"
            )
        root = axis.split(".", 1)[0]
        if root in FIXED:
            raise ValueError(f"{axis}: a matrix cannot vary {FIXED[root]}; remove this axis")
        if len(set(map(repr, values))) != len(values):
            raise ValueError(f"{axis}: a value is listed twice; list each value once")
        for other in matrix:
            if other != axis and other.startswith(f"{axis}."):
                raise ValueError(f"{axis} and {other} overlap; vary one of them")
    count = 1
    for values in matrix.values():
        count *= len(values)
    if count > MAX_VARIANTS:
        raise ValueError(
            f"{count} variants (the product of the axes' lengths), more than {MAX_VARIANTS}; list fewer values"
        )


def combinations(matrix: Mapping[str, Sequence[MatrixValue]]) -> list[dict[str, MatrixValue]]:
    """Every combination of one value per axis, the first axis varying slowest."""
    axes = list(matrix)
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*matrix.values())]


def _shown(value: MatrixValue) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str) and "/" in value:  # a file: its name says which
        return PurePath(value).name
    return str(value)


def variant_names(matrix: Mapping[str, Sequence[MatrixValue]]) -> list[str]:
    """Each combination's name: ``key=value`` per axis (the path's last part; the whole path where
    two axes end alike), joined by commas, made safe as a directory name and unique."""
    last = [axis.rsplit(".", 1)[-1] for axis in matrix]
    keys = {axis: key if last.count(key) == 1 else axis for axis, key in zip(matrix, last, strict=True)}
    names: list[str] = []
    for i, values in enumerate(combinations(matrix), start=1):
        name = ",".join(f"{keys[axis]}={_shown(value)}" for axis, value in values.items())
        name = _UNSAFE.sub("_", name).strip(".")[:NAME_LIMIT] or f"variant-{i}"
        if name in names:  # two values that read the same once made safe
            name = f"{name[: NAME_LIMIT - 4]}-{i}"
        names.append(name)
    return names


def set_path(data: dict[str, Any], axis: str, value: MatrixValue) -> None:
    """Set ``axis`` in ``data`` (the scenario as written): missing mappings on the way are made, a
    list index must exist."""
    parts = axis.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        here = ".".join(parts[:depth]) or "the scenario"
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise MatrixError(axis, f"{here} is a list of {len(node)}; write an index from 0 to {len(node) - 1}")
            index = int(part)
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise MatrixError(axis, f"{here} is a value ({node!r}), not a mapping or a list; shorten the path")


def _data_path(data: Any, loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """pydantic's location as a path in ``data``: the union tags and validator names it adds left out."""
    out: list[int | str] = []
    node = data
    for part in loc:
        inside = isinstance(node, dict) and part in node
        if inside or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
        elif isinstance(node, dict) and node.get("kind") == part:  # a union's tag, not in the file
            continue
        elif isinstance(node, dict | list):  # a missing key, or one pydantic named
            out.append(part)
            break
        else:
            break
        out.append(part)
    return tuple(out)


def _blame(axes: Sequence[str], loc: tuple[int | str, ...]) -> str | None:
    """The axis a problem at ``loc`` (a path in the data) comes from: the one leading to it or lying under it."""
    path = tuple(str(part) for part in loc)
    for axis in axes:
        parts = tuple(axis.split("."))
        if path[: len(parts)] == parts or parts[: len(path)] == path:
            return axis
    return None


def variants(scenario: Scenario) -> list[Variant]:
    """Every variant of ``scenario``'s matrix, each validated as a whole scenario; none without a
    matrix. Raises :class:`MatrixError` for the first that is not valid."""
    if not scenario.matrix:
        return []
    base = scenario.model_dump(mode="json", exclude_unset=True, by_alias=True)
    base.pop("matrix", None)
    out: list[Variant] = []
    combos = combinations(scenario.matrix)
    for name, values in zip(variant_names(scenario.matrix), combos, strict=True):
        data = copy.deepcopy(base)
        for axis, value in values.items():
            set_path(data, axis, value)
        try:
            variant = type(scenario).model_validate(data)
        except ValidationError as exc:
            problem = field_problems(exc)[0]
            path = _data_path(data, problem.loc)
            blamed = _blame(list(values), path)
            shown = field_path(path)
            said = problem.message if ";" in problem.message else f"{problem.message}; change the value or the path"
            if blamed is None:
                raise MatrixError(None, f"variant {name} gives {shown}: {said}") from None
            raise MatrixError(blamed, f"{values[blamed]!r} gives {shown}: {said}") from None
        out.append(Variant(name=name, values=values, scenario=variant))
    return out
