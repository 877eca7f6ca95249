"""Phases that run outside Locust, in the coordinator itself (a Docker target's cold starts).

A feature registers such a phase kind with a runner (``coordinator.registry.PhaseKind``); the
runner is called as ``runner(ctx, step)`` with the run's :class:`~coordinator.run.context.RunContext`
and the plan's :class:`~coordinator.plan.steps.ExternalStep`. It writes its requests as
ordinary records with ``ctx.write_records`` (so the collector, the summary and the live
bridge see them) and may leave a result in ``ctx.extras[step.name]``.
"""

from __future__ import annotations

from typing import Protocol

from coordinator import registry
from coordinator.plan.steps import ExternalStep
from coordinator.run.context import RunContext


class PhaseRunner(Protocol):
    def __call__(self, ctx: RunContext, step: ExternalStep) -> None: ...


def run_external(ctx: RunContext, step: ExternalStep) -> None:
    kind = registry.phase_kind(step.phase_kind)
    if kind.runner is None:
        raise TypeError(f"phase kind {step.phase_kind} is a Locust phase, not an external one")
    runner: PhaseRunner = kind.runner.load()
    runner(ctx, step)
