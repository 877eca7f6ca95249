"""The run context: what every part of a run (and every add-on hooked to its events) can see.

Add-ons (the live-metrics bridge, Grafana annotations, Docker stats) receive this object in
every event, register what they start with :meth:`RunContext.own` so the run tears it down,
and may write records of their own (a cold start's requests) with :meth:`write_records`.
The context holds one Redis client for the run's state and those records, made on first use
and closed at teardown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import redis

from coordinator.plan.steps import LocustStep
from coordinator.results.status import RunStatus
from coordinator.results.summary import PhaseWindow
from coordinator.run.events import RunEvents
from coordinator.run.targets import TargetLifecycle
from coordinator.scenario.models import Scenario
from loadgen.config import TargetConfig
from loadgen.records import RequestRecord
from loadgen.stream.keys import StreamKeys, stream_keys, write_hash
from loadgen.stream.records import RecordWriter


class LocustDriver(Protocol):
    """Runs one Locust step to its end (its duration or requests), as the run's own phases run."""

    def run(self, step: LocustStep) -> PhaseWindow: ...


@dataclass
class RunContext:
    run_id: str
    scenario: Scenario
    scenario_path: Path
    run_dir: Path
    events: RunEvents = field(default_factory=RunEvents)
    redis_url: str = ""
    target: TargetLifecycle | None = None  # once started
    target_config: TargetConfig | None = None
    windows: list[PhaseWindow] = field(default_factory=list)
    current_phase: str | None = None
    stop_requested: threading.Event = field(default_factory=threading.Event)
    started_wall: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    extras: dict[str, Any] = field(default_factory=dict)  # add-ons' results, shown in summary.json
    locust: LocustDriver | None = None  # set once the Locust processes run (phases that drive steps)
    _owned: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    _client: redis.Redis | None = field(default=None, repr=False)
    _writer: RecordWriter | None = field(default=None, repr=False)

    def own(self, name: str, close: Callable[[], None]) -> None:
        """Register something to tear down at the end of the run (last owned, first closed)."""
        self._owned.append((name, close))

    def release_owned(self) -> list[str]:
        """Close everything owned, newest first; returns the failures (never raises)."""
        failures = []
        while self._owned:
            name, close = self._owned.pop()
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - teardown goes on with the rest
                failures.append(f"{name}: {exc}")
        return failures

    @property
    def keys(self) -> StreamKeys:
        return stream_keys(self.run_id)

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(self.redis_url)
            self.own("redis client", self._close_client)
        return self._client

    def _close_client(self) -> None:
        client, self._client, self._writer = self._client, None, None
        if client is not None:
            client.close()

    def set_state(
        self,
        *,
        status: RunStatus | None = None,
        phase: str | None = None,
        scenario: str | None = None,
        target: str | None = None,
    ) -> None:
        """Update the given fields of ``finishline:{run_id}:state`` (status: running, then complete or partial)."""
        given = {"status": status, "phase": phase, "scenario": scenario, "target": target}
        write_hash(
            self._redis(), self.keys.state, {name: str(value) for name, value in given.items() if value is not None}
        )

    def write_records(self, records: Iterable[RequestRecord]) -> int:
        """Add records measured by the coordinator itself (outside Locust) to the run's stream."""
        if self._writer is None:
            self._writer = RecordWriter(self._redis(), self.keys.records)
        return self._writer.write_records(records)
