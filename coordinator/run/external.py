"""Phases that run outside Locust, in the coordinator itself (a Docker target's cold starts).

Each kind maps to a runner ``(ctx, step) -> None`` imported only when used; a runner writes
its requests as ordinary records with ``ctx.write_records`` (so the collector, the summary
and the live bridge see them) and may leave a result in ``ctx.extras[step.name]``.
"""

from __future__ import annotations

import importlib
from typing import Any

from coordinator.run.context import RunContext
from coordinator.run.plan import ExternalStep
from loadgen.errors import UserError

# phase kind -> "module:attribute" of its runner
EXTERNAL_PHASES: dict[str, str] = {
    "cold_start": "coordinator.run.external:run_cold_start",
}


def run_external(ctx: RunContext, step: ExternalStep) -> None:
    target = EXTERNAL_PHASES.get(step.phase_kind)
    if target is None:
        raise UserError(f"phases: kind {step.phase_kind} has no runner in this build")
    module_name, attr = target.split(":")
    runner = getattr(importlib.import_module(module_name), attr)
    runner(ctx, step)


def run_cold_start(ctx: RunContext, step: ExternalStep) -> None:
    """Cold starts of the Docker target (``coordinator.docker.coldstart``), records into the stream."""
    from coordinator.docker.coldstart import ColdStartRunner
    from coordinator.docker.spec import ColdStartPhase

    phase = ColdStartPhase.model_validate(step.spec)
    container: Any = getattr(ctx.target, "container", None)
    if container is None:
        raise UserError(f"phases: {step.name}: cold_start needs a target of kind docker")
    runner = ColdStartRunner(
        phase, container, ctx.run_id, emit=lambda rec: ctx.write_records([rec]), model=ctx.target.model
    )
    ctx.extras[step.name] = runner.run().to_dict()
