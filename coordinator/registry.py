"""The one registry: what each feature adds to finishline, found through package entry points.

A *feature* is a package that declares, in one :class:`Feature` value, the target kinds, the
phase kinds, the run extensions, the report sections and the CLI commands it brings. Features
are listed under the entry-point group ``finishline.features`` (``pyproject.toml``), so adding
one edits neither the scenario module nor the run: the scenario's ``target`` and ``phases``
unions are built from the registered specs, the plan asks the registry which phases run
outside Locust, the run attaches the registered extensions, the report appends the registered
sections and the CLI lists the registered commands.

Everything a feature names beyond its spec models is a :class:`Ref` (``"module:attribute"``),
imported only when first used, so ``finishline simulate`` pays for neither Docker nor
Prometheus. This module is the bottom layer of ``coordinator``: it imports none of it.
"""

from __future__ import annotations

import enum
import functools
import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

from loadgen.errors import UserError

ENTRY_POINT_GROUP = "finishline.features"

T = TypeVar("T")


class Capability(enum.StrEnum):
    """What a target kind can do beyond serving requests; phases and extensions ask for these."""

    COLD_START = "cold_start"  # can be restarted fresh and timed (create -> ready -> first token)
    CONTAINER_STATS = "container_stats"  # runs in a container whose CPU, memory and OOM kills are sampled


@dataclass(frozen=True, slots=True)
class Ref(Generic[T]):
    """``"package.module:attribute"``, imported on first :meth:`load`."""

    path: str

    def load(self) -> T:
        module_name, _, attr = self.path.partition(":")
        value: T = getattr(importlib.import_module(module_name), attr)
        return value


@dataclass(frozen=True, slots=True)
class TargetKind:
    """A kind of target: its scenario spec (a model with ``kind: Literal[...]``) and how a run drives it.

    ``lifecycle`` is a factory ``(spec, run_id, run_dir) -> TargetLifecycle``
    (``coordinator.run.targets``).
    """

    kind: str
    spec: type[Any]
    lifecycle: Ref[Any]
    capabilities: frozenset[Capability] = frozenset()


@dataclass(frozen=True, slots=True)
class PhaseKind:
    """A kind of phase: its scenario spec, and ``runner`` when it runs in the coordinator, not in Locust.

    A phase without a runner is expanded by the plan into Locust steps. A runner is called as
    ``runner(ctx, step)`` (``coordinator.run.phases``). ``requires``: what the target must be able to do.
    """

    kind: str
    spec: type[Any]
    runner: Ref[Any] | None = None
    requires: frozenset[Capability] = frozenset()
    drives_locust: bool = False  # its runner runs Locust steps (``ctx.locust``): the workers are started


@dataclass(frozen=True, slots=True)
class Feature:
    """Everything one feature contributes.

    - ``extensions``: ``attach(ctx)`` called before the run starts (``coordinator.run.extensions``);
    - ``report_sections``: ``render(run_dir) -> str`` (an HTML fragment, '' for nothing), appended to
      ``report.html`` in order (``coordinator.results.report``);
    - ``commands``: CLI command name -> a ``click.Command``;
    - ``cleanups``: ``cleanup() -> int`` removes what killed runs of this feature left behind
      (containers whose owner is gone) and says how many (``finishline clean``, ``finishline run``).
    - ``worker_launchers``: worker source name (the scenario's ``workers`` key, e.g. ``containers``) -> a factory ``(spec, run_id) -> WorkerLauncher`` (``coordinator.run.launchers``);
    """

    name: str
    targets: tuple[TargetKind, ...] = ()
    phases: tuple[PhaseKind, ...] = ()
    extensions: tuple[Ref[Any], ...] = ()
    report_sections: tuple[Ref[Any], ...] = ()
    commands: dict[str, Ref[Any]] = field(default_factory=dict)
    cleanups: tuple[Ref[Any], ...] = ()
    worker_launchers: dict[str, Ref[Any]] = field(default_factory=dict)


@functools.cache
def features() -> tuple[Feature, ...]:
    """Every installed feature, in entry-point name order (``core`` first)."""
    found = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name != "core", ep.name))
    if not found:
        raise UserError(
            f"no finishline features are installed (entry points {ENTRY_POINT_GROUP!r}); run `pip install -e .`"
        )
    loaded = []
    for entry in found:
        feature = entry.load()
        if not isinstance(feature, Feature):
            raise TypeError(f"entry point {entry.name} = {entry.value} is not a coordinator.registry.Feature")
        loaded.append(feature)
    return tuple(loaded)


def target_kinds() -> Iterator[TargetKind]:
    for feature in features():
        yield from feature.targets


def phase_kinds() -> Iterator[PhaseKind]:
    for feature in features():
        yield from feature.phases


Kind = TypeVar("Kind", TargetKind, PhaseKind)


def _find(kind: str, entries: Iterable[Kind], unavailable: str) -> Kind:
    """The first entry of ``kind``; else a :class:`UserError`, ``unavailable`` filled in with the
    kind asked for and the kinds there are."""
    entries = tuple(entries)
    for entry in entries:
        if entry.kind == kind:
            return entry
    raise UserError(unavailable.format(kind=kind, names=", ".join(e.kind for e in entries)))


def target_kind(kind: str) -> TargetKind:
    return _find(
        kind, target_kinds(), "target.kind: {kind} targets are not available in this build; use one of {names}"
    )


def phase_kind(kind: str) -> PhaseKind:
    return _find(kind, phase_kinds(), "phases: kind {kind} is not available in this build; use one of {names}")


def extensions() -> Iterator[Ref[Any]]:
    for feature in features():
        yield from feature.extensions


def report_sections() -> Iterator[Ref[Any]]:
    for feature in features():
        yield from feature.report_sections


def cleanups() -> Iterator[Ref[Any]]:
    for feature in features():
        yield from feature.cleanups


def worker_launcher(source: str) -> Ref[Any]:
    """The factory of the first feature that launches workers of ``source`` (the scenario's ``workers`` key)."""
    for feature in features():
        if source in feature.worker_launchers:
            return feature.worker_launchers[source]
    raise UserError(f"workers.{source}: workers of this kind are not available in this build")


def commands() -> dict[str, Ref[Any]]:
    out: dict[str, Ref[Any]] = {}
    for feature in features():
        out.update(feature.commands)
    return out
