"""Container resources of a Docker target, as they travel to the bridge and out of it.

The coordinator (``coordinator/docker/live.py``) writes one *container sample* a second to
the run's samples stream ``finishline:{run_id}:samples``, in the entry field ``c`` (worker
samples use ``s``, so every reader of worker samples skips these). A container sample holds
the running container's latest stats and the run's totals so far of OOM kills and restarts.
Totals rather than events: a bridge that starts (or restarts) mid-run needs only the latest
sample to expose the right counter values.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

FIELD = b"c"  # the samples-stream entry field of a container sample


@dataclass(slots=True)
class ContainerSample:
    """What the coordinator publishes about its Docker target every stats interval."""

    target: str
    time: float  # time.monotonic() of publishing
    running: bool  # a container of the target is up
    oom_kills: int  # containers of this run killed by the OOM killer so far
    restarts: int  # restarts by Docker's restart policy, over the run's containers so far
    container: int | None = None  # the target's container number (cold starts make several)
    stats: dict[str, Any] | None = None  # a new `coordinator.docker.stats.StatsSample`, else None

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> ContainerSample | None:
        """None for anything that is not a container sample (never raises)."""
        try:
            data = orjson.loads(raw)
            return cls(**data) if isinstance(data, dict) else None
        except (orjson.JSONDecodeError, TypeError):
            return None


@dataclass(slots=True)
class ContainerGauges:
    """The latest stats (while fresh) and the largest totals seen; ``values()`` for exposition."""

    fresh_s: float = 5.0
    stats: dict[str, Any] | None = None
    stats_seen: float = 0.0  # monotonic time the bridge read the latest stats
    running: bool = False
    totals: dict[str, int] = field(default_factory=dict)  # oom_kills, restarts (never decrease)

    def add(self, sample: ContainerSample, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.running = sample.running
        if sample.stats is not None:
            self.stats, self.stats_seen = sample.stats, now
        for name in ("oom_kills", "restarts"):
            self.totals[name] = max(self.totals.get(name, 0), int(getattr(sample, name)))

    def values(self, now: float | None = None) -> tuple[dict[str, float], dict[str, float]]:
        """``(gauges, counters)``; gauges only while a container runs and its stats are fresh."""
        now = time.monotonic() if now is None else now
        gauges: dict[str, float] = {}
        if self.running and self.stats is not None and now - self.stats_seen <= self.fresh_s:
            gauges = {
                "cpu_percent": float(self.stats.get("cpu_percent") or 0.0),
                "memory_bytes": float(self.stats.get("memory_bytes") or 0),
                "memory_limit": float(self.stats.get("memory_limit") or 0),
            }
        return gauges, {name: float(v) for name, v in self.totals.items()}

    @property
    def seen(self) -> bool:
        return bool(self.totals)
