"""A trace replayed on its own clock: which rows a window holds and when each is sent.

A row at trace time ``t`` is due ``(t - window start) / speed`` seconds after the replay's
origin; the window starts ``start`` seconds after the trace's first row and lasts ``duration``
(to the last row when not given). With ``loop`` passes the window is played again and again,
each pass ``duration / speed`` after the last. Rows are dealt to the workers in turn (row ``i``
of the whole schedule to worker ``i % workers``), so together they send the trace's schedule and
each sends an even share of it.

The origin is one instant for every worker: the master names it (wall-clock time, a little
ahead so that every worker's dispatcher is waiting when it comes) in the phase command.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Sequence

from pydantic import Field, model_validator

from loadgen.declaration import Spec

REPLAY_LEAD = 1.0  # seconds between the master announcing a replay and its origin


class ReplayCommand(Spec):
    """What a worker needs to replay a trace (``PhaseCommand.replay``)."""

    workload: str = Field(min_length=1, description="the workload whose trace prompt source is replayed")
    speed: float = Field(default=1.0, gt=0, description="2: twice as fast as the trace")
    start: float = Field(default=0.0, ge=0, description="trace seconds after its first row where the window starts")
    duration: float | None = Field(
        default=None, gt=0, description="trace seconds the window lasts (default: to the end)"
    )
    loop: int = Field(default=1, ge=1, description="passes over the window")
    origin: float | None = Field(
        default=None, description="wall-clock time (s) the window's start is due; the master sets it"
    )

    @model_validator(mode="after")
    def _loop_has_a_period(self) -> ReplayCommand:
        if self.loop > 1 and self.duration is None:
            raise ValueError("loop needs duration: each pass lasts the window's duration")
        return self

    def origin_monotonic(self) -> float:
        """The origin on this process's monotonic clock; now when the master named none (a phase
        announced to Locust's web UI, whose start is the user's)."""
        mono = time.monotonic()
        return mono if self.origin is None else mono + (self.origin - time.time())


def window(times: Sequence[float], start: float, duration: float | None) -> tuple[int, int, float]:
    """The rows of ``times`` (sorted) in the window: ``(first, end, span)``, rows ``first`` to
    ``end - 1``, and the window's length in trace seconds (``duration``, or to its last row)."""
    if not times:
        return 0, 0, 0.0
    begin = times[0] + start
    first = bisect.bisect_left(times, begin)
    if duration is None:
        end = len(times)
        span = max(times[-1] - begin, 0.0) if first < end else 0.0
    else:
        end = bisect.bisect_left(times, begin + duration)
        span = duration
    return first, max(first, end), span


def window_rows(times: Sequence[float], replay: ReplayCommand) -> int:
    """How many requests the replay sends in all (every pass)."""
    first, end, _ = window(times, replay.start, replay.duration)
    return (end - first) * replay.loop


def wall_seconds(times: Sequence[float], replay: ReplayCommand) -> float:
    """How long the replay's schedule lasts, from its origin to its last send (every pass)."""
    first, end, span = window(times, replay.start, replay.duration)
    if first == end:
        return 0.0
    passes = replay.loop - 1
    last = times[end - 1] - (times[0] + replay.start)
    return (passes * span + last) / replay.speed


def schedule(
    times: Sequence[float], replay: ReplayCommand, share: int = 0, shares: int = 1
) -> Iterator[tuple[float, int]]:
    """``(seconds after the origin, row index)`` of each row worker ``share`` of ``shares`` sends, in order."""
    first, end, span = window(times, replay.start, replay.duration)
    begin = times[0] + replay.start if times else 0.0
    n = end - first
    for p in range(replay.loop):
        for j in range(first, end):
            if (p * n + j - first) % shares == share:
                yield (p * span + times[j] - begin) / replay.speed, j
