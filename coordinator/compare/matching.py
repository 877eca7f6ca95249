"""Which step of the baseline each step of the current side is compared with, and why.

A step matches the baseline's step of the same name and workload; failing that, the one at
the same load (kind and level: 8 concurrent streams, 4 requests/s) and workload, so a
finishline phase ``steady`` meets GuideLLM's ``concurrent@8``. Each baseline step is used
once, names first, so a load match never takes a step that a name match wanted. What is
left on either side is reported, not compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from coordinator.baselines.model import Load, LoadKind, Step


class MatchedBy(StrEnum):
    NAME = "name"
    LOAD = "load"


@dataclass(frozen=True)
class Match:
    current: Step
    baseline: Step
    by: MatchedBy

    @property
    def label(self) -> str:
        """How the match is shown: ``steady = steady`` or ``steady ~ concurrent@8 (concurrency 8)``."""
        if self.by is MatchedBy.NAME:
            return self.current.name
        return f"{self.current.name} ~ {self.baseline.name} (by load: {describe_load(self.current.load)})"


@dataclass(frozen=True)
class Matching:
    matches: list[Match]
    unmatched_current: list[Step]
    unmatched_baseline: list[Step]


def describe_load(load: Load | None) -> str:
    if load is None:
        return "unknown"
    if load.value is None:
        return load.kind.value
    unit = " req/s" if load.kind is LoadKind.RATE else ""
    return f"{load.kind.value} {load.value:g}{unit}"


def _level(load: Load | None) -> tuple[LoadKind, float] | None:
    """A load as a comparable level; synchronous is concurrency 1, every cold start one level."""
    if load is None or load.kind is LoadKind.THROUGHPUT:
        return None
    if load.kind is LoadKind.SYNCHRONOUS:
        return (LoadKind.CONCURRENCY, 1.0)
    if load.kind is LoadKind.COLD_START:  # the number of starts is not a load level
        return (LoadKind.COLD_START, 0.0)
    if load.value is None:
        return None
    return (load.kind, round(float(load.value), 6))


def match_steps(current: list[Step], baseline: list[Step]) -> Matching:
    free = list(baseline)
    matched: dict[int, Match] = {}
    for i, step in enumerate(current):
        same = next((b for b in free if b.name == step.name and b.workload == step.workload), None)
        if same is not None:
            free.remove(same)
            matched[i] = Match(step, same, MatchedBy.NAME)
    for i, step in enumerate(current):
        level = _level(step.load)
        if i in matched or level is None:
            continue
        same = next((b for b in free if _level(b.load) == level and b.workload == step.workload), None)
        if same is not None:
            free.remove(same)
            matched[i] = Match(step, same, MatchedBy.LOAD)
    return Matching(
        matches=[matched[i] for i in sorted(matched)],
        unmatched_current=[s for i, s in enumerate(current) if i not in matched],
        unmatched_baseline=free,
    )
