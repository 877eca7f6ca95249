"""Container resource samples: CPU, memory, OOM events, taken while the target runs.

Docker's stats stream gives one raw sample per second; this turns each into the figures a
reader needs (CPU percent of one core, memory without page cache) and keeps them in the
run directory (``container_stats.jsonl``) and in memory for the summary. The sample type,
:class:`~loadgen.samples.StatsSample`, lives beside the other samples: it also travels to the
bridge in the run's samples stream.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import docker
import orjson
from docker.errors import APIError, NotFound

from loadgen.samples import StatsSample


def parse_sample(raw: dict[str, Any], container: int, now: float) -> StatsSample | None:
    """Docker's raw stats JSON -> a sample; None for the first (no previous CPU reading)."""
    cpu, pre = raw.get("cpu_stats") or {}, raw.get("precpu_stats") or {}
    total = cpu.get("cpu_usage", {}).get("total_usage")
    pre_total = pre.get("cpu_usage", {}).get("total_usage")
    system, pre_system = cpu.get("system_cpu_usage"), pre.get("system_cpu_usage")
    if total is None or pre_total is None or system is None or pre_system is None or system <= pre_system:
        return None
    online = cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or [1])
    percent = (total - pre_total) / (system - pre_system) * online * 100.0
    mem = raw.get("memory_stats") or {}
    stats = mem.get("stats") or {}
    # Same rule as the docker CLI: v1 subtracts total_inactive_file, v2 inactive_file.
    cache = stats.get("total_inactive_file", stats.get("inactive_file", 0))
    usage = max(0, int(mem.get("usage", 0)) - int(cache))
    return StatsSample(
        time=now,
        container=container,
        cpu_percent=round(percent, 2),
        memory_bytes=usage,
        memory_limit=int(mem.get("limit", 0)),
        memory_failcnt=int(mem.get("failcnt", 0)),
        pids=int((raw.get("pids_stats") or {}).get("current", 0)),
    )


class StatsSampler:
    """Follows one container's stats stream in a thread until the container goes away."""

    def __init__(
        self, client: docker.DockerClient, container_id: str, number: int, out: Path | None, interval: float = 1.0
    ) -> None:
        self.client = client
        self.container_id = container_id
        self.number = number
        self.out = out
        self.interval = interval
        self.samples: list[StatsSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stats-{container_id[:12]}", daemon=True)

    def start(self) -> StatsSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        last = 0.0
        try:
            for raw in self.client.api.stats(self.container_id, stream=True, decode=True):
                if self._stop.is_set():
                    break
                now = time.monotonic()
                if now - last < self.interval * 0.9:
                    continue
                sample = parse_sample(raw, self.number, now)
                if sample is None:
                    continue
                last = now
                self.samples.append(sample)
                if self.out is not None:
                    with self.out.open("ab") as fh:
                        fh.write(orjson.dumps(asdict(sample)) + b"\n")
        except (NotFound, APIError, OSError, ValueError):
            pass  # the container was removed: the stream ends, and so does sampling

    def stop(self, timeout: float = 3.0) -> None:
        """Stop sampling; the stream itself ends when the container is removed."""
        self._stop.set()
        self._thread.join(timeout)

    def summary(self) -> dict[str, float | int | None]:
        if not self.samples:
            return {"samples": 0, "cpu_mean": None, "cpu_max": None, "memory_peak": None, "memory_failcnt": 0}
        cpu = [s.cpu_percent for s in self.samples]
        return {
            "samples": len(self.samples),
            "cpu_mean": round(sum(cpu) / len(cpu), 2),
            "cpu_max": max(cpu),
            "memory_peak": max(s.memory_bytes for s in self.samples),
            "memory_failcnt": max(s.memory_failcnt for s in self.samples),
        }
