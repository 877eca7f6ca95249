"""Worker self-observation: is this worker itself the bottleneck?

Every second a greenlet writes one :class:`~loadgen.samples.WorkerSample` to the run's samples
stream: CPU and resident memory of the process (the soak analysis's client memory), event-loop lag (how late the sampler woke up: a busy gevent hub
delays every timestamp the users take), users, target vs achieved request rate and the phase.
Once a minute it also hands the C heap's free memory back to the system (``loadgen.heap``).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import gevent
import psutil
import redis

from loadgen.config import CONTAINER_ENV
from loadgen.heap import HeapTrimmer
from loadgen.samples import WorkerSample
from loadgen.stream.samples import SampleWriter

log = logging.getLogger(__name__)


def worker_id() -> str:
    """``host:pid``, the worker name on records and samples; ``container:pid`` in a container a
    launcher started (``FINISHLINE_WORKER_CONTAINER``): containers with host networking carry the
    host's name, and each is often pid 1 or 7 of its own, so two would share ``host:pid``."""
    return f"{os.environ.get(CONTAINER_ENV) or socket.gethostname()}:{os.getpid()}"


@dataclass(slots=True)
class LoadState:
    """What the users report to the sampler: a snapshot of the worker's load right now."""

    phase: str = ""
    users: int = 0
    target_rate: float | None = None  # requests/s this worker should send (open phases)
    dispatched: int = 0  # logical requests begun since start (monotone counter)
    in_flight: int = 0
    budget_left: int | None = None  # requests the phase may still begin here (loadgen.budget); None: no limit


class WorkerSampler:
    """Writes a sample every ``interval`` seconds until stopped."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        state: Callable[[], LoadState],
        interval: float = 1.0,
        worker: str | None = None,
    ) -> None:
        self.writer = SampleWriter(client, key)
        self.state = state
        self.interval = interval
        self.worker = worker or worker_id()
        self._process = psutil.Process()
        self._heap = HeapTrimmer()
        self._greenlet: gevent.Greenlet | None = None
        self.samples = 0

    def start(self) -> WorkerSampler:
        if self._greenlet is None:
            self._process.cpu_percent(None)  # prime: the first call has no interval to measure
            self._greenlet = gevent.spawn(self._run)
        return self

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)
            self._greenlet = None

    def _run(self) -> None:
        last = time.monotonic()
        last_count = self.state().dispatched
        while True:
            asked = time.monotonic()
            gevent.sleep(self.interval)
            now = time.monotonic()
            lag = max(0.0, now - asked - self.interval)
            snap = self.state()
            achieved = (snap.dispatched - last_count) / (now - last) if now > last else 0.0
            last, last_count = now, snap.dispatched
            sample = WorkerSample(
                worker=self.worker,
                time=now,
                wall_time=time.time(),
                cpu_percent=self._process.cpu_percent(None),
                loop_lag_ms=lag * 1000.0,
                users=snap.users,
                target_rate=snap.target_rate,
                achieved_rate=achieved,
                in_flight=snap.in_flight,
                phase=snap.phase,
                budget_left=snap.budget_left,
                rss_bytes=self._process.memory_info().rss,  # one read of /proc/self/statm: cheap
            )
            try:
                self.writer.write(sample)
                self.samples += 1
            except redis.RedisError as exc:
                log.warning("worker sampler: could not write a sample: %s", exc)
            self._heap.maybe(now)  # once a minute, after the sample: it holds the loop for about a millisecond
