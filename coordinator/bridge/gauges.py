"""Gauges of the load (users, target and achieved rate, client health) from the samples stream.

Every worker writes a sample a second. The bridge keeps each worker's latest and sums the
fresh ones. With several bridges, only the holder of a short Redis lease exposes the gauges,
so that ``sum()`` over bridges in PromQL still gives the run's value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis

from loadgen.samples import WorkerSample

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') and 1 or 0
"""


@dataclass(slots=True)
class _Latest:
    sample: WorkerSample
    seen: float  # monotonic time the bridge read it


@dataclass(slots=True)
class LoadGauges:
    """Latest sample per worker; ``values()`` sums those read within ``fresh_s``."""

    fresh_s: float = 5.0
    latest: dict[str, _Latest] = field(default_factory=dict)

    def add(self, sample: WorkerSample, now: float | None = None) -> None:
        self.latest[sample.worker] = _Latest(sample, time.monotonic() if now is None else now)

    def values(self, now: float | None = None) -> dict[str, dict[str, float]]:
        """``{phase: {users, target_rate, achieved_rate, cpu_percent, loop_lag, rss_bytes}}`` over fresh
        workers.

        Rates and users add up over workers; CPU, loop lag and resident memory are the worst worker's (a single
        saturated worker already distorts the measurement).
        """
        now = time.monotonic() if now is None else now
        out: dict[str, dict[str, float]] = {}
        for item in self.latest.values():
            if now - item.seen > self.fresh_s:
                continue
            s = item.sample
            g = out.setdefault(
                s.phase,
                {
                    "users": 0.0,
                    "target_rate": 0.0,
                    "achieved_rate": 0.0,
                    "cpu_percent": 0.0,
                    "loop_lag": 0.0,
                    "rss_bytes": 0.0,
                },
            )
            g["users"] += s.users
            if s.target_rate is not None:  # None: a closed phase has no target rate
                g["target_rate"] += s.target_rate
            g["achieved_rate"] += s.achieved_rate
            g["cpu_percent"] = max(g["cpu_percent"], s.cpu_percent)
            g["loop_lag"] = max(g["loop_lag"], s.loop_lag_ms / 1000.0)
            g["rss_bytes"] = max(g["rss_bytes"], float(s.rss_bytes))
        return out


class Lease:
    """A Redis key held by one bridge at a time; expires if its holder dies."""

    def __init__(self, client: redis.Redis, key: str, holder: str, ttl_s: float = 5.0) -> None:
        self.key = key
        self.holder = holder
        self.ttl_ms = int(ttl_s * 1000)
        self._renew = client.register_script(_RENEW)
        self.held = False

    def renew(self) -> bool:
        self.held = bool(self._renew(keys=[self.key], args=[self.holder, self.ttl_ms]))
        return self.held
