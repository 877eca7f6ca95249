"""Published request traces read as rows (time, input and output length), and each row's prompt text.

Three formats, each as its publisher writes it:

- Mooncake (JSON Lines): ``timestamp`` (ms), ``input_length``, ``output_length``, ``hash_ids``
  (one id per ``block_size`` prompt tokens; requests sharing an id shared that block's KV cache);
- Azure LLM inference trace (CSV with a header): ``TIMESTAMP`` (a date and time),
  ``ContextTokens``, ``GeneratedTokens``;
- BurstGPT (CSV with a header): ``Timestamp`` (s), ``Model``, ``Request tokens``,
  ``Response tokens``, ``Total tokens``, ``Log Type``; rows may be kept to one model and log type.

Every line is checked when the trace is read (the coordinator's ``validate`` reads it too), so a
malformed one is reported with its file, line and field before any traffic is sent. Rows come
back in time order. Text is cut from the corpus at positions fixed by the run's seed: a Mooncake
block's by its hash id (so requests that share ids share the text a prefix cache sees), any
other row's by its index (so rows share no accidental prefix), the same in every worker.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from loadgen.corpus import Corpus, remember_count
from loadgen.errors import UserError
from loadgen.spec import TracePrompt


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One request of a trace: when it came (seconds on the trace's own clock) and its lengths."""

    time: float
    input_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()


class _Malformed(Exception):
    """A field of one line is wrong; ``read_trace`` adds the file (and the line, where a field's
    parser did not know it)."""

    def __init__(self, field: str, message: str, line: int | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.line = line


def _count(value: Any, field: str) -> int:
    """A token count: a non-negative integer (CSV cells arrive as text)."""
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(\.0*)?", text) is None:
            raise _Malformed(field, f"{value!r} is not a non-negative whole number of tokens")
        return int(float(text))
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Malformed(field, f"{value!r} is not a non-negative whole number of tokens")
    return value


def _seconds(value: Any, field: str, unit: float) -> float:
    """A time on the trace's clock, in seconds (``unit``: seconds per unit written)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _Malformed(field, f"{value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise _Malformed(field, f"{value!r} is not a non-negative number")
    return float(value) * unit


_FRACTION = re.compile(r"^(.*?\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$")


def _datetime_seconds(value: str, field: str) -> float:
    """Seconds since the epoch of a date and time such as Azure's ``2023-11-16 18:15:46.6805900``
    (any number of fractional digits; without a zone, UTC)."""
    wrong = _Malformed(field, f"{value!r} is not a date and time (e.g. 2023-11-16 18:15:46.680)")
    match = _FRACTION.match(value.strip())
    if match is None:
        raise wrong
    base, fraction, zone = match.groups()
    try:
        stamp = datetime.fromisoformat(base + zone)
    except ValueError:
        raise wrong from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)


def _mooncake_row(line: bytes) -> TraceRow:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise _Malformed("", "not valid JSON") from None
    if not isinstance(obj, dict):
        raise _Malformed("", "not a JSON object")
    for key in ("timestamp", "input_length", "output_length"):
        if key not in obj:
            raise _Malformed(key, "missing")
    ids = obj.get("hash_ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise _Malformed("hash_ids", "must be a list of integers")
    return TraceRow(
        _seconds(obj["timestamp"], "timestamp", 0.001),
        _count(obj["input_length"], "input_length"),
        _count(obj["output_length"], "output_length"),
        tuple(ids),
    )


def _azure_row(cells: dict[str, str]) -> TraceRow:
    return TraceRow(
        _datetime_seconds(cells["TIMESTAMP"], "TIMESTAMP"),
        _count(cells["ContextTokens"], "ContextTokens"),
        _count(cells["GeneratedTokens"], "GeneratedTokens"),
    )


AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
BURSTGPT_COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")


def _burstgpt_row(cells: dict[str, str]) -> TraceRow:
    row = TraceRow(
        _seconds(cells["Timestamp"], "Timestamp", 1.0),
        _count(cells["Request tokens"], "Request tokens"),
        _count(cells["Response tokens"], "Response tokens"),
    )
    total = _count(cells["Total tokens"], "Total tokens")
    if total != row.input_tokens + row.output_tokens:
        raise _Malformed("Total tokens", f"{total} is not Request tokens + Response tokens")
    return row


def _csv_rows(raw: bytes, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Each data row of a CSV file as a mapping of the header's names; the header must name ``columns``."""
    reader = csv.reader(io.StringIO(raw.decode("utf-8", errors="replace"), newline=""))
    header = next(reader, None)
    if header is None:
        raise _Malformed("header", "the file is empty; the first line names the columns", 1)
    names = [h.strip() for h in header]
    missing = [c for c in columns if c not in names]
    if missing:
        raise _Malformed("header", f"needs the columns {', '.join(columns)}; missing {', '.join(missing)}", 1)
    for cells in reader:
        number = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            raise _Malformed("", f"has {len(cells)} cells, the header names {len(names)}", number)
        yield number, dict(zip(names, cells, strict=True))


def _keep(source: TracePrompt, cells: dict[str, str]) -> bool:
    """BurstGPT's filters: the row's model and log type, when the source names them."""
    return (source.model is None or cells["Model"].strip() == source.model) and (
        source.log_type is None or cells["Log Type"].strip() == source.log_type
    )


def _rows(source: TracePrompt, raw: bytes) -> Iterator[TraceRow]:
    """The rows of the file, each line checked (a filtered-out line too); a malformed one raises
    ``_Malformed`` with its line number."""
    if source.format == "mooncake":
        numbered: Iterator[tuple[int, Any]] = (
            (number, line) for number, line in enumerate(raw.splitlines(), 1) if line.strip()
        )
    else:
        numbered = _csv_rows(raw, AZURE_COLUMNS if source.format == "azure" else BURSTGPT_COLUMNS)
    for number, item in numbered:
        try:
            if source.format == "mooncake":
                row = _mooncake_row(item)
            elif source.format == "azure":
                row = _azure_row(item)
            else:
                row = _burstgpt_row(item)
                if not _keep(source, item):
                    continue
        except _Malformed as exc:
            exc.line = number
            raise
        yield row


@functools.lru_cache(maxsize=8)
def read_trace(source: TracePrompt, where: str = "prompt.path") -> tuple[TraceRow, ...]:
    """Every row of the trace (after the BurstGPT filters), in time order. Raises ``UserError``
    naming ``where``, the file, the line and the field of the first malformed line."""
    path = source.path
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{where}: cannot read {path}: {exc.strerror}") from None
    try:
        rows = list(_rows(source, raw))
    except _Malformed as exc:
        raise UserError(f"{where}: {path} line {exc.line}: {exc}; fix or remove the line") from None
    if not rows:
        kept = " matching model and log_type" if source.model or source.log_type else ""
        raise UserError(f"{where}: {path} has no requests{kept}")
    rows.sort(key=lambda r: r.time)  # stable: rows of the same time keep the file's order
    return tuple(rows)


class TraceText:
    """The prompt text of each row, ``input_tokens`` long by the corpus's count."""

    def __init__(self, corpus: Corpus, block_size: int, seed: int) -> None:
        self.corpus = corpus
        self.block_size = block_size
        self.seed = seed

    def _position(self, what: str, key: int) -> int:
        return random.Random(f"{self.seed}:trace:{what}:{key}").randrange(len(self.corpus))

    def prompt(self, row: TraceRow, index: int) -> str:
        """Row ``index``'s text: block after block of its hash ids (the last one cut to what is
        left), then, for tokens beyond its blocks, text of its own."""
        tokens = max(1, row.input_tokens)  # an empty prompt is refused by servers: one token at least
        parts: list[str] = []
        left = tokens
        for block in row.hash_ids:
            if left <= 0:
                break
            take = min(left, self.block_size)
            parts.append(self.corpus.window(take, self._position("block", block)))
            left -= take
        if left > 0:
            parts.append(self.corpus.window(left, self._position("row", index)))
        return remember_count(parts[0] if len(parts) == 1 else " ".join(parts), tokens)
