"""Records written from inside a Locust worker: queued without waiting, shipped from a greenlet,
each logical request counted in Redis before it is sent."""

from __future__ import annotations

import logging
import time

import gevent
import gevent.event
import gevent.lock
import redis

from loadgen.records import RequestRecord
from loadgen.stream.keys import stream_keys
from loadgen.stream.records import RecordWriter

log = logging.getLogger(__name__)


class RecordSink:
    """Records written in batches from a greenlet (inside Locust workers).

    Users hand a finished record to :meth:`add` (no I/O, no waiting); a greenlet ships what is
    queued every ``flush_interval`` seconds (100 ms) or as soon as ``batch_size`` records wait,
    with :class:`RecordWriter`. If Redis is unreachable the records stay queued and are sent
    again; the queue is bounded (``max_pending``): beyond it the oldest records are dropped and
    counted in :attr:`dropped`. :meth:`close` flushes whatever is left.

    Before each logical request is sent, :meth:`begin` counts it in the run's progress hash
    (:class:`BegunCounter`). The count is in the kernel's hands before the request is, so for a
    worker that dies, the requests it began and never recorded are exactly its count minus its
    records received: lost records are counted, not hidden.
    """

    def __init__(
        self,
        redis_url: str,
        run_id: str,
        batch_size: int = 256,
        flush_interval: float = 0.1,
        maxlen: int | None = None,
        *,
        worker: str = "",
        max_pending: int = 200_000,
    ) -> None:
        self.client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=30)
        self.keys = stream_keys(run_id)
        self.writer = RecordWriter(self.client, self.keys.records, maxlen)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.worker = worker
        self.max_pending = max_pending
        self.begun = 0  # logical requests begun
        self._begun_counter = BegunCounter(redis_url, self.keys.progress, worker)
        self._pending: list[tuple[str, bytes]] = []
        self._wake = gevent.event.Event()
        self._stopping = False
        self._greenlet: gevent.Greenlet | None = None
        self.sent = 0  # records acknowledged by Redis
        self.failures = 0  # failed flush round trips (each retried)
        self.dropped = 0  # records dropped because the queue was full while Redis was away

    def start(self) -> RecordSink:
        self._begun_counter.connect()
        if self._greenlet is None:
            self._stopping = False
            self._greenlet = gevent.spawn(self._run)
        return self

    def add(self, record: RequestRecord) -> None:
        """Queue a finished record; serialised now so the record may be reused or dropped."""
        self._pending.append((record.id, record.to_json()))
        if len(self._pending) >= self.batch_size:
            self._wake.set()
            if len(self._pending) > self.max_pending:  # Redis has been away for long: keep the newest
                over = len(self._pending) - self.max_pending
                del self._pending[:over]
                self.dropped += over

    @property
    def pending(self) -> int:
        return len(self._pending)

    def begin(self) -> None:
        """Count one logical request about to be sent (see the class docstring)."""
        self.begun += 1
        self._begun_counter.begin()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self._begun_counter.drain()
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
            try:
                self.writer.write(batch)
            except BaseException:
                self._pending[:0] = batch
                raise
            sent += len(batch)
            self.sent += len(batch)
        return sent

    def close(self, timeout: float = 30.0, unreachable_timeout: float = 3.0) -> None:
        """Stop the greenlet and flush what is left, retrying until ``timeout`` (``unreachable_timeout``
        when Redis refuses connections: it is gone, not slow); what could not be sent is logged with
        its count and stays in :attr:`pending`."""
        self._stopping = True
        self._wake.set()
        if self._greenlet is not None:
            self._greenlet.join(timeout=timeout)
            self._greenlet = None
        start = time.monotonic()
        while True:
            try:
                self.flush()
                break
            except redis.ConnectionError as exc:
                if time.monotonic() - start > unreachable_timeout:
                    log.error("record sink: Redis unreachable, %d records not written: %s", len(self._pending), exc)
                    break
            except redis.RedisError as exc:
                if time.monotonic() - start > timeout:
                    log.error("record sink: %d records could not be written: %s", len(self._pending), exc)
                    break
            gevent.sleep(0.2)
        self._begun_counter.close()
        self.client.close()


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class BegunCounter:
    """A worker's count of logical requests begun, in Redis, without waiting for Redis.

    Each :meth:`begin` writes ``HINCRBY progress worker n`` on a connection of its own and does
    not wait for the reply: the bytes are in the kernel's socket buffer before the request they
    count is written to the endpoint, so even a worker killed right after has its count
    delivered, and a request never waits a round trip. Replies are read and dropped by
    :meth:`drain` (the sink's greenlet, every flush interval), so neither side's buffers grow.
    A count that could not be written (Redis away) is added to the next one that can.
    """

    def __init__(self, redis_url: str, key: str, worker: str) -> None:
        self._conn = redis.ConnectionPool.from_url(redis_url, socket_connect_timeout=5).make_connection()
        self.key = key
        self.worker = worker
        # HINCRBY key worker, packed once: a request pays only for its count's bytes (RESP: an array
        # of bulk strings, what redis-py's packer would write for the same arguments)
        self._command = b"*4\r\n" + b"".join(_bulk(part.encode()) for part in ("HINCRBY", key, worker))
        self.unreported = 0  # begun, not yet written to Redis
        self._lock = gevent.lock.Semaphore()  # one command at a time on the socket

    def connect(self) -> None:
        """Connect now, before the traffic, if Redis is there (else the first :meth:`begin` does).

        The first ``begin`` would otherwise connect while holding the lock, a round trip that
        yields: every user starting meanwhile queues on the lock and is let through one hub turn
        at a time, hundreds of milliseconds for a thousand users started together, each counted
        in its request's dispatch delay."""
        with self._lock:
            try:
                self._conn.connect()
            except (redis.RedisError, OSError):
                self._conn.disconnect()

    def begin(self) -> None:
        with self._lock:
            count, self.unreported = self.unreported + 1, 0
            try:
                self._conn.send_packed_command([self._command + _bulk(b"%d" % count)], check_health=False)
            except BaseException as exc:  # a command cut short is not executed: count it again
                self.unreported = count
                self._conn.disconnect()
                if not isinstance(exc, redis.RedisError | OSError):
                    raise

    def drain(self) -> None:
        """Read the replies that have arrived (each the new count); never waits."""
        with self._lock:
            try:
                while self._conn.can_read(timeout=0):
                    self._conn.read_response()
            except (redis.RedisError, OSError):
                self._conn.disconnect()

    def close(self) -> None:
        self.drain()
        self._conn.disconnect()
