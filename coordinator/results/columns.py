"""A run's records as compact numpy columns: what the summary, the report and the self-check read.

The columns are built in one streaming pass over ``records.jsonl.gz`` (:func:`read_columns`),
one record at a time, so no list of :class:`~loadgen.records.RequestRecord` is ever held: a
record costs about 145 bytes of columns, 4 per attempt and 17 per streamed chunk, whatever it
held as an object. Row ``i`` of every per-record column is the ``i``-th record of the file, so a
group of records (a phase, a workload) is a boolean mask over rows and keeps the file's order.

Values are those of ``loadgen.metrics``, computed once per record: the per-request metrics
(NaN where undefined, and for a record without attempts), and the ITL of each successful
request's final attempt, kept per chunk (per-token gap and the tokens it counts for, and
whether the gap is inside the answer: the answer's ITL) and expanded to one value per token
only when a group's percentiles are taken. Nothing is
rounded or narrowed (float64 seconds, integer counts), so percentiles over the columns are
the very numbers numpy gives over the records.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from coordinator.results.collector import read_records
from loadgen import metrics
from loadgen.records import OK, RequestRecord

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Codes = npt.NDArray[np.int32]  # codes and small counts
Mask = npt.NDArray[np.bool_]

# per-request metrics (ITL has many values per request and is kept apart)
REQUEST_METRICS: tuple[str, ...] = tuple(name for name in metrics.LATENCY_METRICS if name != "itl")
ANSWER_REQUEST_METRICS: tuple[str, ...] = tuple(name for name in metrics.ANSWER_METRICS if name != "itl_answer")


@dataclass(frozen=True, slots=True, eq=False)
class RecordColumns:
    """Every record of a run, one row each, in the order of the records file.

    ``phase``, ``workload`` and ``outcome`` are codes into ``phases``, ``workloads`` and
    ``classes``; ``attempt_class`` holds every attempt's own class code (``"ok"`` or its error
    class), record after record, ``attempts[i]`` of them for row ``i``.
    """

    phases: tuple[str, ...]
    workloads: tuple[str, ...]
    classes: tuple[str, ...]  # "ok" and the error classes met, as outcomes or attempts
    phase: Codes
    workload: Codes
    outcome: Codes  # the final attempt's class ("cancelled" without attempts)
    ok: Mask
    attempts: Codes
    attempt_class: Codes
    values: Mapping[str, Floats]  # REQUEST_METRICS and ANSWER_REQUEST_METRICS in seconds, NaN where undefined
    scheduled: Floats
    end: Floats
    sent: Floats  # the final attempt's sent (NaN without attempts)
    output_tokens: Ints  # of the final attempt (0 when unknown)
    prompt_tokens: Ints
    reasoning_tokens: Ints  # of output_tokens (0 when unknown)
    itl_chunks: Codes  # per row: its ITL chunks, in itl_gap / itl_tokens (0 unless it succeeded)
    itl_gap: Floats  # per ITL chunk: seconds per token (loadgen.metrics.itl_of_chunks)
    itl_tokens: Ints  # per ITL chunk: the tokens, each one ITL sample of itl_gap
    itl_in_answer: Mask  # per ITL chunk: the gap is between two answer chunks (loadgen.metrics.itl_answer)

    @property
    def n(self) -> int:
        return int(self.phase.size)

    def everything(self) -> Mask:
        return np.ones(self.n, dtype=bool)

    def of_phase(self, name: str) -> Mask:
        return self.phase == self.phases.index(name) if name in self.phases else np.zeros(self.n, dtype=bool)

    def of_phases(self, names: Iterable[str]) -> Mask:
        wanted = set(names)
        codes = [i for i, name in enumerate(self.phases) if name in wanted]
        return np.isin(self.phase, codes)

    def workloads_in(self, rows: Mask) -> list[tuple[str, Mask]]:
        """Each workload of the rows, by name, with its rows (a subset of ``rows``)."""
        present = np.unique(self.workload[rows])
        named = sorted((self.workloads[int(code)], int(code)) for code in present)
        return [(name, rows & (self.workload == code)) for name, code in named]

    def itl(self, rows: Mask) -> Floats:
        """The ITL samples (seconds, one per token) of the rows' successful requests, in row order."""
        chunks = np.repeat(rows, self.itl_chunks)
        return np.repeat(self.itl_gap[chunks], self.itl_tokens[chunks])

    def itl_answer(self, rows: Mask) -> Floats:
        """The answer's ITL samples (seconds, one per token) of the rows' successful requests, in row order."""
        chunks = np.repeat(rows, self.itl_chunks) & self.itl_in_answer
        return np.repeat(self.itl_gap[chunks], self.itl_tokens[chunks])

    def itl_of_row(self, row: int, starts: Ints) -> Floats:
        """One row's ITL samples; ``starts`` is :meth:`itl_starts`."""
        lo, hi = int(starts[row]), int(starts[row + 1])
        return np.repeat(self.itl_gap[lo:hi], self.itl_tokens[lo:hi])

    def itl_starts(self) -> Ints:
        """Where each row's ITL chunks begin (and, last, where they end)."""
        return np.concatenate(([0], np.cumsum(self.itl_chunks))).astype(np.int64)

    def count_by_class(self, codes: Codes) -> dict[str, int]:
        """How often each class occurs among ``codes``, by name, sorted, the classes that occur only."""
        counts = np.bincount(codes, minlength=len(self.classes))
        return {name: int(counts[i]) for i, name in sorted(enumerate(self.classes), key=lambda c: c[1]) if counts[i]}

    def outcomes(self, rows: Mask) -> dict[str, int]:
        """Requests per final class (``"ok"`` included)."""
        return self.count_by_class(self.outcome[rows])

    def attempt_classes(self, rows: Mask) -> dict[str, int]:
        """Attempts per class, every attempt of the rows (``"ok"`` included)."""
        return self.count_by_class(self.attempt_class[np.repeat(rows, self.attempts)])


class ColumnsBuilder:
    """Grows the columns one record at a time (``array`` storage: 4 or 8 bytes a value, no objects)."""

    def __init__(self) -> None:
        self._phases: dict[str, int] = {}
        self._workloads: dict[str, int] = {}
        self._classes: dict[str, int] = {OK: 0}
        self._phase = array("i")
        self._workload = array("i")
        self._outcome = array("i")
        self._attempts = array("i")
        self._attempt_class = array("i")
        self._values = {name: array("d") for name in (*REQUEST_METRICS, *ANSWER_REQUEST_METRICS)}
        self._scheduled = array("d")
        self._end = array("d")
        self._sent = array("d")
        self._output_tokens = array("q")
        self._prompt_tokens = array("q")
        self._reasoning_tokens = array("q")
        self._chunks = array("i")  # per row: chunks of its final attempt kept for ITL
        self._in_answer = array("b")  # per chunk: after the first answer chunk
        self._chunk_us = array("q")
        self._chunk_tokens = array("i")

    @staticmethod
    def _code(codes: dict[str, int], name: str) -> int:
        code = codes.get(name)
        if code is None:
            code = codes[name] = len(codes)
        return code

    def add(self, rec: RequestRecord) -> None:
        classes = self._classes
        self._phase.append(self._code(self._phases, rec.phase))
        self._workload.append(self._code(self._workloads, rec.workload))
        outcome = rec.outcome
        self._outcome.append(self._code(classes, outcome))
        self._attempts.append(len(rec.attempts))
        self._attempt_class.extend(self._code(classes, a.error or OK) for a in rec.attempts)
        self._scheduled.append(rec.scheduled)
        self._end.append(rec.end)
        if not rec.attempts:
            for column in self._values.values():
                column.append(np.nan)
            self._sent.append(np.nan)
            self._output_tokens.append(0)
            self._prompt_tokens.append(0)
            self._reasoning_tokens.append(0)
            self._chunks.append(0)
            return
        for name, value in (*metrics.request_values(rec).items(), *metrics.answer_values(rec).items()):
            self._values[name].append(np.nan if value is None else value)
        final = rec.final
        self._sent.append(final.sent)
        self._output_tokens.append(metrics.output_tokens(rec))
        self._prompt_tokens.append(metrics.prompt_tokens(rec))
        self._reasoning_tokens.append(metrics.reasoning_tokens(rec))
        if outcome != OK:
            self._chunks.append(0)
            return
        offsets, counts = final.chunk_us, final.chunk_tokens
        n = len(offsets)
        self._chunks.append(n)
        self._chunk_us.extend(offsets)
        answer = final.answer_chunk
        if answer is None:  # no answer (or a record written before answers were told apart)
            self._in_answer.extend(bytes(n))
        else:  # as metrics.itl_answer: the gaps that end after the first answer chunk
            after = min(answer + 1, n)
            self._in_answer.extend(bytes(after))
            self._in_answer.extend(b"\x01" * (n - after))
        if len(counts) == len(offsets):
            self._chunk_tokens.extend(counts)
        else:  # as metrics.itl reads them: a missing count is 0, i.e. one token
            self._chunk_tokens.extend((list(counts) + [0] * len(offsets))[: len(offsets)])

    def build(self) -> RecordColumns:
        chunks = _codes(self._chunks)
        first = np.zeros(len(self._chunk_us), dtype=bool)
        starts = np.cumsum(chunks, dtype=np.int64) - chunks
        first[starts[chunks > 0]] = True
        chunk_tokens = _codes(self._chunk_tokens).astype(np.int64)
        gaps, tokens = metrics.itl_of_chunks(_ints(self._chunk_us), chunk_tokens, first)
        in_answer = np.frombuffer(self._in_answer, dtype=np.bool_) if len(self._in_answer) else np.empty(0, bool)
        in_answer = in_answer[1:][~first[1:]]  # aligned with the gaps: every chunk but an attempt's first
        del chunk_tokens, first
        outcome = _codes(self._outcome)
        return RecordColumns(
            phases=tuple(self._phases),
            workloads=tuple(self._workloads),
            classes=tuple(self._classes),
            phase=_codes(self._phase),
            workload=_codes(self._workload),
            outcome=outcome,
            ok=outcome == self._classes[OK],
            attempts=_codes(self._attempts),
            attempt_class=_codes(self._attempt_class),
            values={name: _floats(column) for name, column in self._values.items()},
            scheduled=_floats(self._scheduled),
            end=_floats(self._end),
            sent=_floats(self._sent),
            output_tokens=_ints(self._output_tokens),
            prompt_tokens=_ints(self._prompt_tokens),
            reasoning_tokens=_ints(self._reasoning_tokens),
            itl_chunks=np.maximum(chunks - 1, 0).astype(np.int32),  # a request's first chunk starts no gap
            itl_gap=gaps,
            itl_tokens=tokens,
            itl_in_answer=in_answer,
        )


def _codes(values: array[int]) -> Codes:
    return np.frombuffer(values, dtype=np.int32) if len(values) else np.empty(0, dtype=np.int32)


def _ints(values: array[int]) -> Ints:
    return np.frombuffer(values, dtype=np.int64) if len(values) else np.empty(0, dtype=np.int64)


def _floats(values: array[float]) -> Floats:
    return np.frombuffer(values, dtype=np.float64) if len(values) else np.empty(0, dtype=np.float64)


def columns_of(records: Iterable[RequestRecord]) -> RecordColumns:
    """The columns of records in hand (tests, the few records of a check); runs use :func:`read_columns`."""
    builder = ColumnsBuilder()
    for rec in records:
        builder.add(rec)
    return builder.build()


COLUMNS_SUFFIX = ".columns.npz"  # records.jsonl.gz -> records.jsonl.gz.columns.npz
_COLUMNS_VERSION = 1
_NAMES = ("phases", "workloads", "classes")


def columns_file(records: Path) -> Path:
    """Where the columns of ``records`` are kept beside it (:func:`save_columns`)."""
    return records.with_name(records.name + COLUMNS_SUFFIX)


def _source_stamp(records: Path) -> npt.NDArray[np.str_]:
    """The records file's identity: its content's digest (a copy, a clone of a committed baseline
    keep it; a file written again does not)."""
    with records.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha1").hexdigest()
    return np.array([f"v{_COLUMNS_VERSION}:{records.stat().st_size}:{digest}"])


def save_columns(columns: RecordColumns, records: Path) -> Path:
    """Keep ``columns`` (read from ``records``) beside it, so the next reader (a comparison, a
    baseline) loads arrays instead of parsing every record again. Stamped with the records file's
    digest: a records file written again is parsed again."""
    arrays: dict[str, Any] = {name: np.array(getattr(columns, name), dtype=str) for name in _NAMES}
    for item in fields(RecordColumns):
        if item.name in _NAMES or item.name == "values":
            continue
        arrays[item.name] = getattr(columns, item.name)
    for name, column in columns.values.items():
        arrays[f"value:{name}"] = column
    arrays["source"] = _source_stamp(records)
    target = columns_file(records)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("wb") as fh:
        np.savez_compressed(fh, **arrays)
    tmp.replace(target)
    return target


def _load_columns(records: Path) -> RecordColumns | None:
    """The kept columns of ``records`` when they are of this very file, else None."""
    path = columns_file(records)
    try:
        with np.load(path, allow_pickle=False) as data:
            if not np.array_equal(data["source"], _source_stamp(records)):
                return None
            kwargs: dict[str, Any] = {name: tuple(str(v) for v in data[name]) for name in _NAMES}
            kwargs["values"] = {key[len("value:") :]: data[key] for key in data.files if key.startswith("value:")}
            for item in fields(RecordColumns):
                if item.name not in kwargs:
                    kwargs[item.name] = data[item.name]
            return RecordColumns(**kwargs)
    except (OSError, KeyError, ValueError, TypeError):  # none, or of another version: parse the records
        return None


def read_columns(path: Path) -> RecordColumns:
    """The columns of a records file: the kept ones when they are of this file, else read in one
    pass (a tail cut short by a crash is left out)."""
    kept = _load_columns(path)
    return kept if kept is not None else columns_of(read_records(path))


def as_columns(records: RecordColumns | Iterable[RequestRecord]) -> RecordColumns:
    """Columns as they are, or the columns of records."""
    return records if isinstance(records, RecordColumns) else columns_of(records)
