"""Where a run stands: one vocabulary for the run, its summary and the Redis state hash.

A run is ``running`` until it ends ``complete`` (every phase ran to its end and every record
was taken) or ``partial`` (stopped early, or records may be missing; what was measured is kept).
A run whose coordinator was killed before it wrote its results is ``recovered`` once
``finishline recover`` (or the next run) has written them from what it left.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    PARTIAL = "partial"
    RECOVERED = "recovered"
