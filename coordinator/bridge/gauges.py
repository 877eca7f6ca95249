"""Gauges of the load (users, target and achieved rate, client health) from the samples stream.

Every worker writes a sample a second. The bridge keeps each worker's latest and sums the
fresh ones. With several bridges, only the holder of a short Redis lease exposes the gauges,
so that ``sum()`` over bridges in PromQL still gives the run's value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from coordinator.bridge.containers import FIELD as CONTAINER_FIELD
from coordinator.bridge.containers import ContainerGauges, ContainerSample

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') and 1 or 0
"""


@dataclass(slots=True)
class _Latest:
    sample: dict[str, Any]
    seen: float  # monotonic time the bridge read it


@dataclass(slots=True)
class LoadGauges:
    """Latest sample per worker; ``values()`` sums those read within ``fresh_s``."""

    fresh_s: float = 5.0
    latest: dict[str, _Latest] = field(default_factory=dict)

    def add(self, sample: dict[str, Any], now: float | None = None) -> None:
        self.latest[str(sample.get("worker", ""))] = _Latest(sample, time.monotonic() if now is None else now)

    def values(self, now: float | None = None) -> dict[str, dict[str, float]]:
        """``{phase: {users, target_rate, achieved_rate, cpu_percent, loop_lag}}`` over fresh workers.

        Rates and users add up over workers; CPU and loop lag are the worst worker's (a single
        saturated worker already distorts the measurement).
        """
        now = time.monotonic() if now is None else now
        out: dict[str, dict[str, float]] = {}
        for item in self.latest.values():
            if now - item.seen > self.fresh_s:
                continue
            s = item.sample
            g = out.setdefault(
                str(s.get("phase") or ""),
                {"users": 0.0, "target_rate": 0.0, "achieved_rate": 0.0, "cpu_percent": 0.0, "loop_lag": 0.0},
            )
            g["users"] += float(s.get("users") or 0)
            g["target_rate"] += float(s.get("target_rate") or 0.0)
            g["achieved_rate"] += float(s.get("achieved_rate") or 0.0)
            g["cpu_percent"] = max(g["cpu_percent"], float(s.get("cpu_percent") or 0.0))
            g["loop_lag"] = max(g["loop_lag"], float(s.get("loop_lag_ms") or 0.0) / 1000.0)
        return out


class SampleReader:
    """Reads the samples stream from (about) now on; no group: every bridge sees every sample.

    Worker samples (field ``s``) go to ``gauges``; a Docker target's container samples
    (field ``c``, see :mod:`coordinator.bridge.containers`) to ``containers``.
    """

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        gauges: LoadGauges,
        lookback_s: float = 10.0,
        containers: ContainerGauges | None = None,
    ) -> None:
        self.client = client
        self.key = key
        self.gauges = gauges
        self.containers = containers
        server_ms = int(client.time()[0]) * 1000
        self.last = f"{max(0, server_ms - int(lookback_s * 1000))}-0"

    def poll(self, count: int = 1000) -> int:
        resp = self.client.xread({self.key: self.last}, count=count)
        n = 0
        for _key, entries in resp or []:
            for entry_id, fields in entries:
                self.last = entry_id.decode()
                raw = fields.get(b"s")
                if raw is None:
                    self._container(fields.get(CONTAINER_FIELD))
                    continue
                try:
                    sample = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(sample, dict):
                    self.gauges.add(sample)
                    n += 1
        return n

    def _container(self, raw: bytes | None) -> None:
        if raw is None or self.containers is None:
            return
        sample = ContainerSample.from_json(raw)
        if sample is not None:
            self.containers.add(sample)


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
