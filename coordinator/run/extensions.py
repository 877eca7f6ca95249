"""Add-ons that attach to a run through its events (live metrics, Grafana annotations, container stats).

Each feature registers its extensions (``coordinator.registry.Feature.extensions``): a function
``attach(ctx)`` that receives the :class:`~coordinator.run.context.RunContext` before the run
starts, decides from ``ctx.scenario`` (and the target's capabilities) whether it has anything
to do, adds listeners to ``ctx.events`` and registers what it starts with ``ctx.own``. One that
fails to attach fails the run before any traffic, with its message.
"""

from __future__ import annotations

from typing import Protocol

from coordinator import registry
from coordinator.run.context import RunContext


class Extension(Protocol):
    def __call__(self, ctx: RunContext) -> object: ...


def attach_all(ctx: RunContext) -> list[str]:
    """Attach every registered extension; returns their names."""
    attached = []
    for ref in registry.extensions():
        extension: Extension = ref.load()
        extension(ctx)
        attached.append(ref.path)
    return attached
