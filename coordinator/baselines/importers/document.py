"""A file to import, read once and parsed as what it is: JSON, JSON lines, or YAML.

Formats are told apart by content (:mod:`coordinator.baselines.importers.registry`), so the
file is parsed before anyone knows which tool wrote it: JSON first (GuideLLM, vLLM and AIPerf
write it), then JSON lines (``vllm bench serve --append-result``, AIPerf's per-request file),
then YAML (a card, or GuideLLM's YAML output).

JSON is parsed as it is read (ijson's C parser, a chunk at a time), so that a large file's
reading can be shown with its time left (``on_read``, an :data:`OnRead`). What that parser
refuses (JSON's ``NaN``, integers beyond 64 bits, YAML) is parsed again from the text by the
standard library, which gives the same values.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, TypeVar

import ijson
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from loadgen.errors import UserError, describe_validation_error

M = TypeVar("M", bound=BaseModel)

OnRead = Callable[[Path, int, int], None]
"""Told ``(path, bytes read so far, the file's size)`` after each chunk of a file being read."""

CHUNK = 4 * 1024 * 1024  # bytes read at a time


class _Counted:
    """A binary file whose reads are told to ``on_read``."""

    def __init__(self, path: Path, file: BinaryIO, on_read: OnRead | None) -> None:
        self.path, self.file, self.on_read = path, file, on_read
        self.size = path.stat().st_size
        self.done = 0

    def read(self, n: int = -1) -> bytes:
        data = self.file.read(n)
        self.done += len(data)
        if self.on_read is not None and data:
            self.on_read(self.path, self.done, self.size)
        return data


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The cyclic garbage collector paused: parsing makes millions of containers and no cycle, and
    the collector's passes over them cost a fifth of the parse (bench/import_speed.py)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _parsed_as_read(path: Path, on_read: OnRead | None) -> list[object] | None:
    """The file's JSON values, parsed as it is read; None when the parser refuses it."""
    try:
        with path.open("rb") as file, _no_cycle_collection():
            counted = _Counted(path, file, on_read)
            return list(ijson.items(counted, "", use_float=True, multiple_values=True, buf_size=CHUNK))
    except ijson.JSONError:
        return None


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


def read_document(path: Path, on_read: OnRead | None = None) -> Document:
    try:
        values = _parsed_as_read(path, on_read)
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror})") from None
    if values:
        return Document(path, "json", values[0]) if len(values) == 1 else Document(path, "jsonl", values)
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


def read_lines(path: Path, on_read: OnRead | None = None) -> Iterator[tuple[int, str]]:
    """A text file's non-blank lines with their numbers (from 1), told to ``on_read`` as read;
    one line naming the file if it cannot be read or is not UTF-8."""
    try:
        with path.open("rb") as file:
            counted = _Counted(path, file, on_read)
            rest = b""
            number = 0
            while chunk := counted.read(CHUNK):
                *whole, rest = (rest + chunk).split(b"\n")
                for line in whole:
                    number += 1
                    if line.strip():
                        yield number, line.decode("utf-8")
            if rest.strip():
                yield number + 1, rest.decode("utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file; expected JSON lines") from None
