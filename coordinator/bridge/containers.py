"""Container resources of a Docker target, out of the bridge.

The coordinator (``coordinator/docker/live.py``) writes a
:class:`~loadgen.samples.ContainerSample` each stats interval to the run's samples stream
(field ``c``; worker samples use ``s``, so readers of worker samples never see these). It
holds the running container's latest stats and the run's totals so far of OOM kills and
restarts; the bridge keeps the latest stats while fresh and the largest totals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from loadgen.samples import ContainerSample, StatsSample


@dataclass(slots=True)
class ContainerGauges:
    """The latest stats (while fresh) and the largest totals seen; ``values()`` for exposition."""

    fresh_s: float = 5.0
    stats: StatsSample | None = None
    stats_seen: float = 0.0  # monotonic time the bridge read the latest stats
    running: bool = False
    totals: dict[str, int] = field(default_factory=dict)  # oom_kills, restarts (never decrease)

    def add(self, sample: ContainerSample, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.running = sample.running
        if sample.stats is not None:
            self.stats, self.stats_seen = sample.stats, now
        for name, total in (("oom_kills", sample.oom_kills), ("restarts", sample.restarts)):
            self.totals[name] = max(self.totals.get(name, 0), total)

    def values(self, now: float | None = None) -> tuple[dict[str, float], dict[str, float]]:
        """``(gauges, counters)``; gauges only while a container runs and its stats are fresh."""
        now = time.monotonic() if now is None else now
        gauges: dict[str, float] = {}
        if self.running and self.stats is not None and now - self.stats_seen <= self.fresh_s:
            gauges = {
                "cpu_percent": float(self.stats.cpu_percent),
                "memory_bytes": float(self.stats.memory_bytes),
                "memory_limit": float(self.stats.memory_limit),
            }
        return gauges, {name: float(v) for name, v in self.totals.items()}

    @property
    def seen(self) -> bool:
        return bool(self.totals)
