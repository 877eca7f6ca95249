"""When the event loop last woke up: the earliest honest time stamp for bytes it delivered; and
how to wake up at a given time more exactly than the loop's timers do.

With many streams, one ``epoll`` wake-up delivers chunks for dozens of sockets and the hub
resumes their greenlets one after another; a ``time.monotonic()`` taken after each ``recv``
would then stamp the last socket later than the first by the time spent on all the others.
A libev *check* watcher (highest priority, so it runs before the I/O callbacks of the same
wake-up) records the wake-up time; a reader that slept in ``recv`` and was resumed by it
uses that time, a reader whose ``recv`` returned without sleeping uses the current time.
"""

from __future__ import annotations

import time

import gevent


class WakeClock:
    """Time and count of the hub's wake-ups (one per loop iteration that polled for I/O)."""

    __slots__ = ("_watcher", "time", "wakes")

    def __init__(self) -> None:
        self.time = time.monotonic()
        self.wakes = 0
        loop = gevent.get_hub().loop
        self._watcher = loop.check(ref=False, priority=loop.MAXPRI)
        self._watcher.start(self._tick)

    def _tick(self) -> None:
        self.time = time.monotonic()
        self.wakes += 1

    def close(self) -> None:
        self._watcher.stop()


_clocks: dict[int, WakeClock] = {}


def wake_clock() -> WakeClock:
    """The clock of the current thread's hub (started on first use)."""
    hub = gevent.get_hub()
    clock = _clocks.get(id(hub))
    if clock is None:
        clock = _clocks[id(hub)] = WakeClock()
    return clock


SPIN = 0.001  # seconds before a deadline from which ``sleep_until`` yields instead of sleeping


def sleep_until(when: float) -> None:
    """Return at ``when`` (monotonic s), never before, and in a Locust worker within a fraction of a
    millisecond rather than one or two.

    The hub's timers fire up to a millisecond or more late (libev waits for I/O in whole
    milliseconds), so the last ``SPIN`` seconds are spent yielding to the hub, which keeps serving
    the other greenlets. Not longer: on a busy machine a process that spins is preempted more
    often than one the kernel wakes, and the late tail grows."""
    delay = when - time.monotonic() - SPIN
    if delay > 0:
        gevent.sleep(delay)
    while time.monotonic() < when:
        gevent.sleep(0)
