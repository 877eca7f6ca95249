"""A run's Redis keys and every read and write of its streams, in one place.

Keys (built only by :func:`stream_keys`): ``finishline:{run_id}:records`` (stream; entry fields
``id``, the record id, and ``r``, the record's JSON), ``…:samples`` (stream; field ``s``, a
:class:`~loadgen.samples.WorkerSample`, or ``c``, a :class:`~loadgen.samples.ContainerSample`),
``…:state`` (hash: phase, status, scenario, target) and ``…:bridge:*`` (the bridge's own keys).

Records are written by :class:`RecordWriter` (one pipelined round trip a batch) and, inside
Locust workers, by :class:`RecordSink` (batches shipped from a greenlet). They are read through
consumer groups by :class:`GroupReader` (the collector's group and the bridge's) and trimmed by
:func:`trim` below what every group still needs. Samples are written by :class:`SampleWriter`
and read without a group by :class:`SampleReader`: every reader sees every sample.

redis-py types replies as unions of bytes and str (and of RESP2 and RESP3 shapes); clients here
are made without ``decode_responses``, and replies are decoded in this module only, so callers
get ``str`` ids and ``bytes`` payloads.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import gevent
import gevent.event
import gevent.lock
import redis
from redis.typing import EncodableT, FieldT

from loadgen.records import RequestRecord
from loadgen.samples import ContainerSample, WorkerSample

log = logging.getLogger(__name__)

KEY_PREFIX = "finishline"
RECORD_ID = b"id"  # records stream: the record's id
RECORD = b"r"  # records stream: the record's JSON
WORKER_SAMPLE = b"s"  # samples stream: a worker sample
CONTAINER_SAMPLE = b"c"  # samples stream: a container sample
SAMPLES_MAXLEN = 100_000  # approximate cap on the samples stream (a day of 1 Hz samples from a worker)


class StreamKeys(NamedTuple):
    records: str
    samples: str
    state: str
    bridge: str  # prefix of the bridge's keys: {bridge}:state:{consumer}, {bridge}:seen:{window}, ...
    progress: str  # hash: worker -> logical requests it has begun (RecordSink.begin)


def stream_keys(run_id: str) -> StreamKeys:
    """The only place Redis key names of a run are built (see docs/architecture.md)."""
    base = f"{KEY_PREFIX}:{run_id}"
    return StreamKeys(f"{base}:records", f"{base}:samples", f"{base}:state", f"{base}:bridge", f"{base}:progress")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _entries(reply: object) -> list[Any]:
    """The entries of the one stream an XREAD/XREADGROUP read (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    entries: list[Any]
    if isinstance(reply, list):  # RESP2: [[stream, entries]]
        entries = reply[0][1]
    elif isinstance(reply, dict):  # RESP3: {stream: entries} or {stream: [entries]}
        (entries,) = reply.values()
        if entries and isinstance(entries[0], list):
            entries = entries[0]
    else:
        raise TypeError(f"unexpected stream reply: {type(reply).__name__}")
    return entries


def read_hash(client: redis.Redis, key: str) -> dict[str, str]:
    """A hash, decoded (the run's state, a bridge's aggregate)."""
    return {_text(k): _text(v) for k, v in client.hgetall(key).items()}


def write_hash(client: redis.Redis, key: str, fields: Mapping[str, str]) -> None:
    mapping: dict[FieldT, EncodableT] = {k: v for k, v in fields.items()}  # noqa: C416 - widens the type
    client.hset(key, mapping=mapping)


# -- records: writing ------------------------------------------------------------------------


class RecordWriter:
    """``XADD`` of serialised records (fields ``id`` and ``r``), one pipelined round trip a batch."""

    def __init__(self, client: redis.Redis, key: str, maxlen: int | None = None) -> None:
        self.client = client
        self.key = key
        self.maxlen = maxlen

    def write(self, batch: Sequence[tuple[str, bytes]], progress: tuple[str, str, int] | None = None) -> None:
        """Send ``(record id, record JSON)`` pairs; raises ``redis.RedisError`` with nothing known written.

        ``progress`` ``(hash key, worker, begun)``: written in the same transaction as the records,
        so what a worker said it had begun and the records it had sent by then arrive together.
        """
        pipe = self.client.pipeline(transaction=progress is not None)
        if progress is not None:
            progress_key, worker, begun = progress
            pipe.hset(progress_key, worker, begun)
        key = self.key
        if self.maxlen is None:
            for rid, raw in batch:
                pipe.xadd(key, {RECORD_ID: rid, RECORD: raw})
        else:
            for rid, raw in batch:
                pipe.xadd(key, {RECORD_ID: rid, RECORD: raw}, maxlen=self.maxlen, approximate=True)
        pipe.execute()

    def write_records(self, records: Iterable[RequestRecord]) -> int:
        batch = [(rec.id, rec.to_json()) for rec in records]
        if batch:
            self.write(batch)
        return len(batch)


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


# -- records: reading through a consumer group ------------------------------------------------


@dataclass(slots=True)
class Unreadable:
    """A stream entry that holds no readable record, and why."""

    id: str
    fields: dict[str, str]  # as it came, decoded (undecodable bytes replaced)
    reason: str


@dataclass(slots=True)
class Batch:
    """What one :meth:`GroupReader.read` returned.

    ``ids`` are every entry read — readable or not, and entries trimmed before they were read —
    and all of them are to be acknowledged together: through :meth:`GroupReader.ack`, or by the
    consumer itself (the bridge acks in the script that applies the batch).
    """

    ids: list[str] = field(default_factory=list)
    records: list[RequestRecord] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)  # records[i]'s JSON as it came
    claimed: int = 0  # entries taken over from other consumers


class GroupReader:
    """One consumer of a consumer group on the records stream.

    The group is created at the stream's start (id 0), so entries written before any reader
    came are read too. Each :meth:`read` takes, in this order: this consumer's own pending
    entries (left by an earlier life of the same consumer name, or by a batch that failed
    before it was acknowledged; see :meth:`reset`) until none are left; then, when a claim
    pass is due, entries of other consumers idle for ``claim_idle_s`` (``XAUTOCLAIM``: dead
    consumers' entries, which would otherwise never be acknowledged); then new entries,
    waiting up to ``block_ms`` for them. A claim pass runs first at the first read, then every
    ``claim_every_s`` after a full pass (never again when ``None``).

    An entry that holds no readable record (no field ``r``, not JSON, not a record of this
    schema) never stops reading: it is handed to ``on_unreadable`` with the reason when read
    and acknowledged with its batch. An entry trimmed before it was read is acknowledged
    without a word: there is nothing left of it to set aside.
    """

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        group: str,
        consumer: str,
        *,
        on_unreadable: Callable[[Unreadable], None],
        count: int = 1000,
        claim_idle_s: float = 0.0,
        claim_every_s: float | None = None,
    ) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.on_unreadable = on_unreadable
        self.count = count
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.claim_every_s = claim_every_s
        self.next_claim = 0.0  # monotonic time of the next claim pass
        self._own_pending = True
        self._cursor = "0-0"
        self._ensure_group()

    def _ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def reset(self) -> None:
        """Read this consumer's pending entries again first (call after an error between read and ack)."""
        self._own_pending = True

    def read(self, block_ms: int | None = None) -> Batch:
        try:
            return self._read(block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis came back without the stream (it restarted empty): what the workers send again
            # is read from the start of the new stream
            self._ensure_group()
            self._own_pending, self._cursor = True, "0-0"
            return Batch()

    def _read(self, block_ms: int | None) -> Batch:
        batch = Batch()
        if self._own_pending:
            entries = _entries(self.client.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=self.count))
            if entries:
                self._parse(entries, batch)
                return batch
            self._own_pending = False
        now = time.monotonic()
        if now >= self.next_claim:
            self._claim(now, batch)
            if batch.ids:
                return batch
        reply = self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=self.count, block=block_ms)
        self._parse(_entries(reply), batch)
        return batch

    def _claim(self, now: float, batch: Batch) -> None:
        reply = self.client.xautoclaim(
            self.stream, self.group, self.consumer, self.claim_idle_ms, start_id=self._cursor, count=self.count
        )
        self._cursor = _text(reply[0])
        if self._cursor == "0-0":  # a full pass over the group's pending entries
            self.next_claim = math.inf if self.claim_every_s is None else now + self.claim_every_s
        self._parse(reply[1], batch)
        batch.claimed = len(batch.ids)
        if len(reply) > 2:  # trimmed before anyone acked them: only the acknowledgement is left to do
            batch.ids.extend(_text(eid) for eid in reply[2])

    def _parse(self, entries: Iterable[Any], batch: Batch) -> None:
        for entry_id, fields in entries:
            if entry_id is None:
                continue
            eid = _text(entry_id)
            batch.ids.append(eid)
            if not fields:  # trimmed before it was read
                continue
            raw = fields.get(RECORD)
            if raw is None:
                self._unreadable(eid, fields, "no field r (record JSON)")
                continue
            raw = _bytes(raw)
            try:
                record = RequestRecord.from_json(raw)
            except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
                self._unreadable(eid, fields, f"{type(exc).__name__}: {exc}")
                continue
            batch.records.append(record)
            batch.raw.append(raw)

    def _unreadable(self, eid: str, fields: Mapping[Any, Any], reason: str) -> None:
        decoded = {_text(k): _bytes(v).decode("utf-8", "replace") for k, v in fields.items()}
        self.on_unreadable(Unreadable(eid, decoded, reason))

    def ack(self, batch: Batch) -> None:
        if batch.ids:
            self.client.xack(self.stream, self.group, *batch.ids)

    def backlog(self) -> int:
        return backlog(self.client, self.stream, self.group)


def backlog(client: redis.Redis, stream: str, group: str) -> int:
    """Entries ``group`` has not acknowledged yet: pending plus never delivered (0 without the stream)."""
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return 0  # no stream yet
    for info in groups:
        if _text(info["name"]) == group:
            return int(info["pending"]) + int(info.get("lag") or 0)
    return 0


# -- records: trimming -------------------------------------------------------------------------


def _parse_id(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def safe_min_id(client: redis.Redis, stream: str, required_groups: Iterable[str] = ()) -> str | None:
    """The lowest id some group still needs, or ``None`` when nothing may be trimmed.

    An entry may go only when *every* group has both delivered it (its id is at or below the
    group's ``last-delivered-id``) and acknowledged it (it is older than the group's oldest
    pending entry). If a group that must see the stream (the collector of a run) does not
    exist yet, nothing is trimmed: it will read from the start.
    """
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return None  # no such stream
    if not groups:
        return None
    names = {_text(g["name"]) for g in groups}
    if not set(required_groups) <= names:
        return None
    needed: list[tuple[int, int]] = []
    for group in groups:
        ms, seq = _parse_id(_text(group["last-delivered-id"]))
        needed.append((ms, seq + 1))
        if int(group["pending"]) > 0:
            summary = client.xpending(stream, _text(group["name"]))
            if summary and summary.get("min"):
                needed.append(_parse_id(_text(summary["min"])))
    ms, seq = min(needed)
    return f"{ms}-{seq}"


def trim(client: redis.Redis, stream: str, required_groups: Iterable[str] = (), *, keep_s: float = 0.0) -> int:
    """Remove the entries no group needs any more (``XTRIM MINID``, exact); returns how many.

    Entries written in the last ``keep_s`` seconds stay even so (an entry's id begins with the
    millisecond Redis added it at): a group created that much later still finds them.
    """
    min_id = safe_min_id(client, stream, required_groups)
    if min_id is None:
        return 0
    bound = _parse_id(min_id)
    if keep_s > 0:
        seconds, micros = client.time()
        bound = min(bound, (int(seconds) * 1000 + int(micros) // 1000 - int(keep_s * 1000), 0))
    if bound <= (0, 1):
        return 0
    return int(client.xtrim(stream, minid=f"{bound[0]}-{bound[1]}", approximate=False))


# -- samples ------------------------------------------------------------------------------------


class SampleWriter:
    """``XADD`` of one worker or container sample to the samples stream, capped at ``maxlen``."""

    def __init__(self, client: redis.Redis, key: str, maxlen: int = SAMPLES_MAXLEN) -> None:
        self.client = client
        self.key = key
        self.maxlen = maxlen

    def write(self, sample: WorkerSample | ContainerSample) -> None:
        name = CONTAINER_SAMPLE if isinstance(sample, ContainerSample) else WORKER_SAMPLE
        self.client.xadd(self.key, {name: sample.to_json()}, maxlen=self.maxlen, approximate=True)


@dataclass(slots=True)
class Samples:
    workers: list[WorkerSample] = field(default_factory=list)
    containers: list[ContainerSample] = field(default_factory=list)


class SampleReader:
    """Reads the samples stream after the last id seen (``XREAD``, no group).

    A sample that cannot be read (another version's, a broken write) is skipped and counted
    in :attr:`skipped`: samples inform, they are not the measurement.
    """

    def __init__(self, client: redis.Redis, key: str, after: str = "0-0") -> None:
        self.client = client
        self.key = key
        self.last = after
        self.skipped = 0

    @classmethod
    def from_now(cls, client: redis.Redis, key: str, lookback_s: float) -> SampleReader:
        """A reader of samples written from ``lookback_s`` ago (Redis's clock) on."""
        server_ms = int(client.time()[0]) * 1000
        return cls(client, key, f"{max(0, server_ms - int(lookback_s * 1000))}-0")

    def read(self, count: int = 1000) -> Samples:
        out = Samples()
        for entry_id, fields in _entries(self.client.xread({self.key: self.last}, count=count)):
            self.last = _text(entry_id)
            try:
                if (raw := fields.get(WORKER_SAMPLE)) is not None:
                    out.workers.append(WorkerSample.from_json(raw))
                elif (raw := fields.get(CONTAINER_SAMPLE)) is not None:
                    out.containers.append(ContainerSample.from_json(raw))
                else:
                    self.skipped += 1
            except (ValueError, TypeError):
                self.skipped += 1
        return out
