"""SIGINT and SIGTERM while a block lasts: a run's handler (stop the phases, a second one hurries
the teardown: :mod:`coordinator.run.runner`) or a matrix's (no further variant starts), and the
handlers that were there before put back after it."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, Self

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

Handler = Callable[[int, FrameType | None], None]


class StopSignals:
    """``handler`` for SIGINT and SIGTERM inside the ``with`` block (main thread only, as Python's
    signals are)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self.handler)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
