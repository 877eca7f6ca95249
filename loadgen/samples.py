"""What travels on a run's samples stream, beside the records: worker and container samples.

A *worker sample* is a worker's view of itself, once a second (``loadgen/telemetry.py``):
its CPU and resident memory, how late its event loop wakes up, its users and target vs achieved request rate.
The self-check, the progress display and the bridge's load gauges read them; the collector
keeps them in the run directory (``samples.jsonl.gz``, one JSON object a line, the same
field names as on the stream).

A *container sample* is what the coordinator publishes about a Docker target once per stats
interval (``coordinator/docker/live.py``): the latest :class:`StatsSample` of its container
and the run's totals so far of OOM kills and restarts. Totals rather than events: a bridge
that starts (or restarts) mid-run needs only the latest sample to expose the right counters.

Both are serialised with orjson like :class:`~loadgen.records.RequestRecord`; ``from_json``
raises ``ValueError`` or ``TypeError`` for anything that is not such a sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


def _object(raw: bytes | str) -> dict[str, Any]:
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise TypeError(f"a sample is a JSON object, not {type(data).__name__}")
    return data


@dataclass(slots=True)
class WorkerSample:
    """One worker's self-observation (``time`` is ``time.monotonic()``, like every record)."""

    worker: str  # host:pid
    time: float
    wall_time: float = 0.0  # time.time() at `time`
    cpu_percent: float = 0.0  # of the worker process; 100 = one core busy
    loop_lag_ms: float = 0.0  # how late the sampler woke up: every timestamp the users take is as late
    users: int = 0
    target_rate: float | None = None  # requests/s this worker should send (open phases), else None
    achieved_rate: float = 0.0  # logical requests begun per second since the previous sample
    in_flight: int = 0
    phase: str = ""
    budget_left: int | None = None  # requests ``phase`` may still begin on this worker; None: no limit
    rss_bytes: int = 0  # resident memory of the worker process (0 in samples written before it was taken)

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, raw: bytes | str) -> WorkerSample:
        return cls(**_object(raw))


@dataclass(slots=True)
class StatsSample:
    """One resource sample of one container (``coordinator/docker/stats.py`` takes them)."""

    time: float  # time.monotonic()
    container: int  # the target's container number in this run (cold starts make several)
    cpu_percent: float  # 100 = one core busy
    memory_bytes: int  # usage without reclaimable page cache (what `docker stats` shows)
    memory_limit: int
    memory_failcnt: int  # times the cgroup hit its limit (cgroup v1)
    pids: int


@dataclass(slots=True)
class ContainerSample:
    """What the coordinator publishes about its Docker target every stats interval."""

    target: str
    time: float  # time.monotonic() of publishing
    running: bool  # a container of the target is up
    oom_kills: int  # containers of this run killed by the OOM killer so far
    restarts: int  # restarts by Docker's restart policy, over the run's containers so far
    container: int | None = None  # the target's container number (cold starts make several)
    stats: StatsSample | None = None  # a stats sample not published before, else None

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, raw: bytes | str) -> ContainerSample:
        data = _object(raw)
        stats = data.pop("stats", None)
        return cls(**data, stats=None if stats is None else StatsSample(**stats))
