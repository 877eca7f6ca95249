"""A file to import, read once and parsed as what it is: JSON, JSON lines, or YAML.

Formats are told apart by content (:mod:`coordinator.baselines.importers.registry`), so the
file is parsed before anyone knows which tool wrote it: JSON first (GuideLLM, vLLM and AIPerf
write it), then JSON lines (``vllm bench serve --append-result``, AIPerf's per-request file),
then YAML (a card, or GuideLLM's YAML output).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from loadgen.errors import UserError, describe_validation_error

M = TypeVar("M", bound=BaseModel)


class FileModel(BaseModel):
    """A part of another tool's file: only the fields an importer reads are declared, the rest is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


@dataclass(frozen=True)
class Document:
    """The parsed file: ``data`` is the JSON or YAML value, or the list of a JSON-lines file's values."""

    path: Path
    syntax: Literal["json", "jsonl", "yaml"]
    data: object

    def validate(self, model: type[M], what: str, value: object | None = None) -> M:
        """``value`` (the whole document by default) as ``model``, or one line naming the file, the
        field and what was expected."""
        try:
            return model.model_validate(self.data if value is None else value)
        except ValidationError as exc:
            raise UserError(f"{self.path}: not {what} ({describe_validation_error(exc)})") from None


def _json_lines(text: str) -> list[object] | None:
    values = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except ValueError:
            return None
    return values or None


def read_document(path: Path) -> Document:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file; expected a JSON, JSON-lines or YAML results file") from None
    try:
        return Document(path, "json", json.loads(text))
    except ValueError:
        pass
    lines = _json_lines(text)
    if lines is not None:
        return Document(path, "jsonl", lines)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}: neither JSON, JSON lines nor YAML (a YAML error{where})") from None
    return Document(path, "yaml", data)
