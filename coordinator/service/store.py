"""The service's run state in Redis: one JSON document per run and the queue's order.

Keys (all under ``finishline:service``): ``runs`` a hash id -> :class:`ServiceRun` JSON;
``queue`` a list of the ids waiting, oldest first. The service writes a run's document at every
change of state, so whatever Redis keeps (the service's private server appends each write to its
AOF) is all a restarted service needs. Calls are synchronous: each is one round trip to a
local server, shorter than anything the event loop would gain by awaiting it.
"""

from __future__ import annotations

import redis
from pydantic import ValidationError

from coordinator.service.models import RunState, ServiceRun

PREFIX = "finishline:service"
RUNS_KEY = f"{PREFIX}:runs"
QUEUE_KEY = f"{PREFIX}:queue"


class RunStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def put(self, run: ServiceRun) -> None:
        self.client.hset(RUNS_KEY, run.id, run.model_dump_json())

    def get(self, run_id: str) -> ServiceRun | None:
        raw = self.client.hget(RUNS_KEY, run_id)
        return None if raw is None else ServiceRun.model_validate_json(raw)

    def all(self) -> list[ServiceRun]:
        """Every run, oldest submission first (a document no longer readable is skipped, not fatal)."""
        out = []
        raw: dict[bytes, bytes] = self.client.hgetall(RUNS_KEY)  # type: ignore[assignment]
        for value in raw.values():
            try:
                out.append(ServiceRun.model_validate_json(value))
            except ValidationError:
                continue
        return sorted(out, key=lambda run: (run.submitted, run.id))

    def enqueue(self, run: ServiceRun) -> None:
        """Keep the queued run and its place at the end of the queue, in one transaction."""
        assert run.status is RunState.QUEUED
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(RUNS_KEY, run.id, run.model_dump_json())
            pipe.rpush(QUEUE_KEY, run.id)
            pipe.execute()

    def queued(self) -> list[str]:
        """The ids waiting, oldest first."""
        ids: list[bytes] = self.client.lrange(QUEUE_KEY, 0, -1)  # type: ignore[assignment]
        return [i.decode() for i in ids]

    def dequeue(self, run: ServiceRun) -> None:
        """Keep ``run`` (no longer queued) and take it off the queue, in one transaction."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(RUNS_KEY, run.id, run.model_dump_json())
            pipe.lrem(QUEUE_KEY, 0, run.id)
            pipe.execute()

    def forget_queued(self, run_id: str) -> None:
        """Take an id off the queue whose run is gone or no longer queued."""
        self.client.lrem(QUEUE_KEY, 0, run_id)
