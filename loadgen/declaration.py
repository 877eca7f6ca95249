"""The base of what a scenario declares, and the checks its fields share.

A scenario's sections, workloads, SLOs and checks, and the workers' configuration, are all
:class:`Spec` models: unknown keys are mistakes, values are immutable, and each problem names
its field.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationInfo


class Spec(BaseModel):
    """Base of a scenario's declarations: unknown keys are mistakes, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_unique(what: str, names: list[str]) -> None:
    """A validator's check that no name is given twice (``what``: the kind of thing named)."""
    if len(set(names)) != len(names):
        raise ValueError(f"{what} names must be unique, got {names}")


def readable_file(path: Path, info: ValidationInfo) -> Path:
    """Fail at validation, naming the path, rather than halfway through a run.

    A relative path is taken relative to the validation context's ``base_dir`` when given
    (the scenario file's folder: ``Model.model_validate(data, context={"base_dir": dir})``).
    """
    path = path.expanduser()
    base = (info.context or {}).get("base_dir")
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    if not path.is_file():
        raise ValueError(f"cannot read {path}: no such file; check the path")
    if not os.access(path, os.R_OK):
        raise ValueError(f"cannot read {path}: permission denied")
    return path
