"""Add-ons that attach to a run through its events (the seam for live metrics and the like).

Each entry is ``"module:function"``; the function receives the ``RunContext`` before the run
starts, decides from ``ctx.scenario`` whether it has anything to do (e.g. the ``metrics``
section), adds listeners to ``ctx.events`` and registers what it starts with ``ctx.own``.
A module that is not installed is skipped; one that fails to attach fails the run before
any traffic, with its message.
"""

from __future__ import annotations

import importlib

from coordinator.run.context import RunContext

# Live metrics (bridge + Prometheus) attach here when the scenario's metrics section asks.
RUN_EXTENSIONS: list[str] = [
    "coordinator.bridge.extension:attach",
    # A Docker target's container stats, published live to the run's samples stream.
    "coordinator.docker.live:attach",
]


def attach_all(ctx: RunContext, extensions: list[str] | None = None) -> list[str]:
    """Attach every installed extension; returns the ones attached."""
    attached = []
    for entry in RUN_EXTENSIONS if extensions is None else extensions:
        module_name, attr = entry.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue  # that add-on is not part of this build
            raise
        getattr(module, attr)(ctx)
        attached.append(entry)
    return attached
