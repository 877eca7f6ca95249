"""Which tool wrote a file, and the importer that reads it: one importer per format, registered by
its module with :meth:`Importer.register` (as GuideLLM's backends register themselves).

:func:`import_file` is what ``baseline import`` and the comparison call: the format is told by
content (each importer's :meth:`Importer.detect`), or forced with ``fmt``; the result is an
:class:`Imported`: a :class:`~coordinator.baselines.model.Baseline` in finishline's definitions,
the per-request values of the steps that had them, and the source files to keep beside it.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from coordinator.baselines.definitions import Recomputed
from coordinator.baselines.importers.document import Document, OnRead, read_document
from coordinator.baselines.model import NAME_PATTERN, Baseline, Load, MetricStats, Step, TargetInfo, Tool
from coordinator.baselines.samples import StepSamples
from loadgen.errors import UserError


@dataclass(frozen=True)
class Imported:
    """Another tool's results in finishline's definitions.

    ``samples`` is keyed by :attr:`~coordinator.baselines.model.Step.samples_key` (the steps whose
    file had per-request data); ``sources`` are the files read, by the name they are kept under.
    """

    baseline: Baseline
    samples: dict[str, StepSamples] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)


class Importer(ABC):
    """Reads one tool's format. Subclasses set ``format``, ``tool`` and ``describes``."""

    format: ClassVar[str]
    tool: ClassVar[Tool]
    describes: ClassVar[str]  # "a GuideLLM benchmarks.json", for messages
    takes_records: ClassVar[bool] = False  # whether its per-request data may be a file of its own (--records)
    registered: ClassVar[dict[str, type[Importer]]] = {}

    def __init__(self, on_read: OnRead | None = None) -> None:
        self.on_read = on_read  # told the progress of each further file it reads

    @classmethod
    def register(cls, importer: type[Importer]) -> type[Importer]:
        """Class decorator: make ``importer`` known under its ``format``."""
        cls.registered[importer.format] = importer
        return importer

    @classmethod
    @abstractmethod
    def detect(cls, doc: Document) -> bool:
        """Whether ``doc`` looks like this format (cheap: top-level keys, not a validation)."""

    @abstractmethod
    def read(self, doc: Document, name: str, records: Path | None) -> Imported:
        """The baseline named ``name`` from ``doc`` (``records``: a per-request file given apart)."""

    def baseline(
        self,
        doc: Document,
        name: str,
        steps: list[Step],
        *,
        version: str | None,
        target: TargetInfo | None = None,
        description: str = "",
        warnings: list[str] | None = None,
    ) -> Baseline:
        return Baseline(
            name=name,
            created=datetime.now(UTC),
            tool=self.tool,
            tool_version=version,
            source=str(doc.path),
            description=description,
            target=target or TargetInfo(),
            steps=steps,
            warnings=warnings or [],
        )


def unique_name(wanted: str, taken: set[str]) -> str:
    """``wanted``, or ``wanted-2``, ``wanted-3`` ... when a step of that name exists (two benchmarks at one level)."""
    name, n = wanted, 1
    while name in taken:
        n += 1
        name = f"{wanted}-{n}"
    taken.add(name)
    return name


def records_step(name: str, load: Load | None, figures: Recomputed, errors_by_class: dict[str, int]) -> Step:
    """A step whose figures finishline computed from per-request values (kept under the step's name)."""
    samples = figures.samples
    return Step(
        name=name,
        load=load,
        requests=samples.requests,
        errors=samples.requests - int(samples.ok.sum()),
        errors_by_class=dict(sorted(errors_by_class.items())),
        duration_s=samples.duration_s,
        metrics=figures.metrics,
        has_samples=True,
        samples_key=name,
    )


def summary_step(
    name: str,
    load: Load | None,
    metrics: dict[str, MetricStats | None],
    *,
    requests: int,
    errors: int,
    duration_s: float | None,
    errors_by_class: dict[str, int] | None = None,
) -> Step:
    """A step of a tool's aggregates only: the figures that mean what finishline's do, the rest absent."""
    return Step(
        name=name,
        load=load,
        requests=requests,
        errors=errors,
        errors_by_class=errors_by_class or {},
        duration_s=duration_s,
        metrics={k: v for k, v in sorted(metrics.items()) if v is not None},
    )


def formats() -> tuple[str, ...]:
    return tuple(Importer.registered)


def default_name(path: Path) -> str:
    """A baseline name from a file's name, for a file compared without being saved."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-.") or "imported"
    if not re.match(NAME_PATTERN, name):
        name = f"imported-{name}"[:80]
    return name[:80]


def _detect(doc: Document) -> type[Importer]:
    for importer in Importer.registered.values():
        if importer.detect(doc):
            return importer
    hint = ""
    if isinstance(doc.data, list) and doc.data and isinstance(doc.data[0], dict) and "metrics" in doc.data[0]:
        hint = " (this looks like AIPerf's per-request profile_export.jsonl: import its profile_export_aiperf.json "
        hint += "and give this file with --records)"
    described = [i.describes for i in Importer.registered.values()]
    kinds = ", ".join(described[:-1]) + f" or {described[-1]}" if len(described) > 1 else "".join(described)
    raise UserError(f"{doc.path}: not a results file finishline can import{hint}; expected {kinds} (or use --format)")


def import_file(
    path: Path,
    fmt: str | None = None,
    records: Path | None = None,
    name: str | None = None,
    on_read: OnRead | None = None,
) -> Imported:
    """Another tool's results file as a baseline (``fmt``: force the format; ``records``: a
    per-request file that is not where the format keeps it; ``name``: the baseline's, else the
    file's; ``on_read``: told the progress of each file read)."""
    if fmt is not None and fmt not in Importer.registered:
        raise UserError(f"--format: unknown format {fmt!r}; use one of {', '.join(formats())}")
    if records is not None and not records.is_file():
        raise UserError(f"--records: {records} is not a file")
    doc = read_document(path, on_read)
    importer = Importer.registered[fmt] if fmt is not None else _detect(doc)
    if records is not None and not importer.takes_records:
        raise UserError(f"--records: {path} is {importer.describes}, which keeps its per-request data in itself")
    return importer(on_read).read(doc, name or default_name(path), records)
