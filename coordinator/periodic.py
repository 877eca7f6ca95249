"""A task run on a daemon thread every so many seconds until stopped.

The coordinator's background chores each are one: reading the server's ``/metrics`` for the web
UI (``run/serverstate.py``), publishing container samples (``docker/live.py``) and restarting a
bridge that died (``bridge/extension.py``). The task handles its own errors; one that raises
ends the thread (and is logged by :mod:`threading`), which the chores above never let happen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    """Runs ``task`` every ``every`` seconds on a daemon thread named ``name``.

    ``at_start``: the first run is at :meth:`start` (a reading wanted at once); otherwise one
    interval later (a watch, a sample of what has happened since). :meth:`stop` waits for a run in
    progress to end, up to ``timeout`` seconds."""

    def __init__(self, name: str, every: float, task: Callable[[], object], *, at_start: bool = False) -> None:
        self.every = every
        self.task = task
        self.at_start = at_start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called: a run in progress may check it before acting."""
        return self._stop.is_set()

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        if self.at_start:
            self.task()
        while not self._stop.wait(self.every):
            self.task()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
