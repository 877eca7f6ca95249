"""Where a run stands: one vocabulary for the run, its summary and the Redis state hash.

A run is ``running`` until it ends ``complete`` (every phase ran to its end and every record
was taken) or ``partial`` (stopped early, or records may be missing; what was measured is kept).
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    PARTIAL = "partial"
