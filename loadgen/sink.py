"""Where records go: a run's Redis Stream, written in batches from a background greenlet.

Users hand a finished record to ``RecordSink.add`` (no I/O, no waiting); a greenlet ships
batches with one pipelined round trip of ``XADD``s. If Redis is briefly unreachable the batch
is kept and sent again, and ``close`` flushes whatever is left, so no measured record is lost
when the run stops.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

import gevent
import gevent.event
import redis

from loadgen.records import RequestRecord

log = logging.getLogger(__name__)

KEY_PREFIX = "finishline"


class StreamKeys(NamedTuple):
    records: str
    samples: str
    state: str


def stream_keys(run_id: str) -> StreamKeys:
    """The only place Redis key names of a run are built (see docs/architecture.md)."""
    base = f"{KEY_PREFIX}:{run_id}"
    return StreamKeys(records=f"{base}:records", samples=f"{base}:samples", state=f"{base}:state")


class RecordSink:
    """Batched, pipelined ``XADD`` of records (fields ``id`` and ``r``) to ``finishline:{run_id}:records``."""

    def __init__(
        self,
        redis_url: str,
        run_id: str,
        batch_size: int = 256,
        flush_interval: float = 0.1,
        maxlen: int | None = None,
    ) -> None:
        self.client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=30)
        self.keys = stream_keys(run_id)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.maxlen = maxlen
        self._pending: list[tuple[str, bytes]] = []
        self._wake = gevent.event.Event()
        self._stopping = False
        self._greenlet: gevent.Greenlet | None = None
        self.sent = 0  # records acknowledged by Redis
        self.failures = 0  # failed flush round trips (each retried)

    def start(self) -> RecordSink:
        if self._greenlet is None:
            self._stopping = False
            self._greenlet = gevent.spawn(self._run)
        return self

    def add(self, record: RequestRecord) -> None:
        """Queue a finished record; serialised now so the record may be reused or dropped."""
        self._pending.append((record.id, record.to_json()))
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
            except redis.RedisError as exc:
                self.failures += 1
                log.warning("record sink: flush failed, will retry: %s", exc)
                gevent.sleep(min(1.0, self.flush_interval * 5))

    def flush(self) -> int:
        """Send everything queued now; on failure the batch goes back to the front of the queue."""
        sent = 0
        while self._pending:
            batch = self._pending[: self.batch_size * 4]
            del self._pending[: len(batch)]
            pipe = self.client.pipeline(transaction=False)
            key = self.keys.records
            for rid, raw in batch:
                if self.maxlen is None:
                    pipe.xadd(key, {"id": rid, "r": raw})
                else:
                    pipe.xadd(key, {"id": rid, "r": raw}, maxlen=self.maxlen, approximate=True)
            try:
                pipe.execute()
            except BaseException:
                self._pending[:0] = batch
                raise
            sent += len(batch)
            self.sent += len(batch)
        return sent

    def close(self, timeout: float = 30.0) -> None:
        """Stop the greenlet and flush what is left, retrying until ``timeout``; never drops silently."""
        self._stopping = True
        self._wake.set()
        if self._greenlet is not None:
            self._greenlet.join(timeout=timeout)
            self._greenlet = None
        deadline = time.monotonic() + timeout
        while self._pending:
            try:
                self.flush()
            except redis.RedisError as exc:
                if time.monotonic() > deadline:
                    log.error("record sink: %d records could not be written: %s", len(self._pending), exc)
                    break
                gevent.sleep(0.2)
        self.client.close()
