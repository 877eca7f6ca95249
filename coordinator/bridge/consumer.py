"""The bridge's loop: read the run's records through consumer group ``bridge``, apply, expose.

Order of reading, each time the loop turns: this consumer's own pending entries (left by a
previous life of the same consumer name) until none are left, then entries of dead
consumers idle longer than ``reclaim_idle_s`` (``XAUTOCLAIM``), then new entries. Every
batch is applied by :class:`~coordinator.bridge.store.BridgeStore` atomically with its
``XACK``; after any Redis error the in-memory aggregate is reloaded from Redis, which is the
truth.
"""

from __future__ import annotations

import logging
import threading
import time

import orjson
import redis
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import Field

from coordinator.bridge.aggregate import add_itl, merge, record_increments
from coordinator.bridge.containers import ContainerGauges
from coordinator.bridge.exposition import BridgeCollector, Snapshot
from coordinator.bridge.gauges import Lease, LoadGauges, SampleReader
from coordinator.bridge.store import GROUP, BridgeStore, bridge_prefix, group_backlog
from coordinator.bridge.trim import trim
from loadgen.metrics import SloRule
from loadgen.records import RequestRecord
from loadgen.sink import stream_keys
from loadgen.spec import Spec

log = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes] | None]


class BridgeOptions(Spec):
    """How one bridge runs (``finishline bridge`` options; ``finishline run`` fills them in)."""

    run_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    redis_url: str = Field(pattern=r"^(redis|rediss|unix)://")
    consumer: str = Field(default="bridge-1", min_length=1)  # stable name: a restart resumes it
    scenario: str | None = None  # label; default: the run's state hash
    target: str | None = None  # label of the gauges; default: the run's state hash
    slo_ttft_s: float | None = Field(default=None, gt=0)
    slo_tpot_s: float | None = Field(default=None, gt=0)
    slo_e2e_s: float | None = Field(default=None, gt=0)
    slo_objective: float = Field(default=0.99, gt=0, lt=1)
    batch: int = Field(default=1000, ge=1, le=10_000)
    block_ms: int = Field(default=200, ge=1, le=10_000)
    reclaim_idle_s: float = Field(default=30.0, gt=0)
    trim_interval_s: float = Field(default=5.0, gt=0)
    trim_require: tuple[str, ...] = ("collector",)  # groups that must exist before trimming
    dedup_window_s: float = Field(default=600.0, gt=0)

    @property
    def slo(self) -> SloRule:
        return SloRule(ttft=self.slo_ttft_s, tpot=self.slo_tpot_s, e2e=self.slo_e2e_s)


class Bridge:
    """One consumer of group ``bridge``; register :attr:`registry` with an HTTP server."""

    def __init__(self, options: BridgeOptions) -> None:
        self.options = options
        self.client = redis.Redis.from_url(options.redis_url)
        keys = stream_keys(options.run_id)
        self.keys = keys
        self.store = BridgeStore(
            self.client, options.run_id, keys.records, options.consumer, GROUP, options.dedup_window_s
        )
        self.store.ensure_group()
        state = {k.decode(): v.decode() for k, v in self.client.hgetall(keys.state).items()}
        self.scenario = options.scenario if options.scenario is not None else state.get("scenario", "")
        self.target = options.target if options.target is not None else state.get("target", "")
        self.slo = options.slo
        self.aggregate = self.store.load()
        self.gauges = LoadGauges()
        self.containers = ContainerGauges()
        self.samples = SampleReader(self.client, keys.samples, self.gauges, containers=self.containers)
        self.lease = Lease(self.client, f"{bridge_prefix(options.run_id)}:gauges", options.consumer)
        self.collector = BridgeCollector(options.run_id, self.scenario, self.target)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, ["run"], registry=self.registry).labels(options.run_id)  # type: ignore[return-value]

        # the bridge's own health (process-local: rate() them; they restart at 0 with the process)
        self.applied = counter("finishline_bridge_applied_records", "records this process counted")
        self.duplicates = counter("finishline_bridge_duplicate_records", "records skipped: id already counted")
        self.reclaimed = counter("finishline_bridge_reclaimed_entries", "entries taken over from dead consumers")
        self.invalid = counter("finishline_bridge_invalid_entries", "entries that hold no readable record")
        self.trimmed = counter("finishline_bridge_trimmed_entries", "stream entries trimmed")
        self.backlog_gauge = Gauge(
            "finishline_bridge_backlog_entries",
            "entries not yet acked by group bridge",
            ["run"],
            registry=self.registry,
        ).labels(options.run_id)
        self._own_pending = True  # read what a previous life of this consumer left first
        self._reclaim_cursor = "0-0"
        self._next_reclaim = 0.0
        self._next_second = 0.0
        self._next_trim = 0.0
        self.stop_event = threading.Event()
        self._publish()

    # -- reading -------------------------------------------------------------------------

    def _read(self) -> list[Entry]:
        stream = self.keys.records
        count = self.options.batch
        if self._own_pending:
            resp = self.client.xreadgroup(GROUP, self.options.consumer, {stream: "0"}, count=count)
            entries = resp[0][1] if resp else []
            if entries:
                return entries
            self._own_pending = False
        now = time.monotonic()
        if now >= self._next_reclaim:
            idle_ms = int(self.options.reclaim_idle_s * 1000)
            resp = self.client.xautoclaim(
                stream, GROUP, self.options.consumer, idle_ms, start_id=self._reclaim_cursor, count=count
            )
            cursor = resp[0].decode() if isinstance(resp[0], bytes) else str(resp[0])
            self._reclaim_cursor = cursor
            if cursor == "0-0":
                self._next_reclaim = now + min(5.0, self.options.reclaim_idle_s / 2)
            claimed = [e for e in resp[1] if e is not None]
            deleted = resp[2] if len(resp) > 2 else []
            if deleted:  # trimmed before anyone acked them: nothing to count, drop from the PEL
                self.client.xack(stream, GROUP, *deleted)
            if claimed:
                self.reclaimed.inc(len(claimed))
                return claimed
        resp = self.client.xreadgroup(
            GROUP, self.options.consumer, {stream: ">"}, count=count, block=self.options.block_ms
        )
        return resp[0][1] if resp else []

    # -- applying ------------------------------------------------------------------------

    def apply(self, entries: list[Entry]) -> int:
        """Count the entries' records once each and ack the entries; returns records counted."""
        if not entries:
            return 0
        entry_ids = [eid.decode() if isinstance(eid, bytes) else eid for eid, _ in entries]
        per_record: dict[str, tuple[float, dict[str, float], dict[str, list[float]]]] = {}
        for _eid, fields in entries:
            raw = (fields or {}).get(b"r")
            if raw is None:
                self.invalid.inc()
                continue
            try:
                record = RequestRecord.from_json(raw)
            except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
                log.warning("bridge: unreadable record skipped: %s", exc)
                self.invalid.inc()
                continue
            if record.id in per_record:  # the same record twice in one batch
                self.duplicates.inc()
                continue
            inc: dict[str, float] = {}
            itl: dict[str, list[float]] = {}
            record_increments(record, self.scenario, self.slo, inc, itl)
            per_record[record.id] = (record.wall_time, inc, itl)
        for _ in range(len(per_record) + 1):
            total: dict[str, float] = {}
            itl_all: dict[str, list[float]] = {}
            for _wt, inc, itl in per_record.values():
                merge(total, inc)
                for lk, gaps in itl.items():
                    itl_all.setdefault(lk, []).extend(gaps)
            add_itl(total, itl_all)
            dups = self.store.apply(entry_ids, [(rid, v[0]) for rid, v in per_record.items()], total)
            if not dups:
                merge(self.aggregate, total)
                self.applied.inc(len(per_record))
                return len(per_record)
            self.duplicates.inc(len(dups))
            for rid in dups:
                per_record.pop(rid, None)
        raise RuntimeError("bridge: duplicate resolution did not converge")

    # -- the loop ------------------------------------------------------------------------

    def poll(self) -> int:
        """One turn: read and apply a batch, then the once-a-second chores. Returns records counted."""
        try:
            counted = self.apply(self._read())
        except redis.RedisError as exc:
            log.warning("bridge: redis error, reloading state: %s", exc)
            time.sleep(0.2)
            self._resync()
            return 0
        now = time.monotonic()
        if now >= self._next_second:
            self._next_second = now + 1.0
            self._chores(now)
        self._publish()
        return counted

    def _resync(self) -> None:
        try:
            self.aggregate = self.store.load()
            self._own_pending = True
        except redis.RedisError:
            pass

    def _chores(self, now: float) -> None:
        self.samples.poll()
        self.lease.renew()
        self.backlog_gauge.set(self.backlog())
        if self.lease.held and now >= self._next_trim:
            self._next_trim = now + self.options.trim_interval_s
            self.trimmed.inc(trim(self.client, self.keys.records, self.options.trim_require))

    def backlog(self) -> int:
        """Entries the group has not acked yet: pending plus never delivered."""
        return group_backlog(self.client, self.keys.records)

    def _publish(self) -> None:
        gauges = self.gauges.values() if self.lease.held else None
        objective = self.options.slo_objective if self.lease.held else None
        containers = self.containers.values() if self.lease.held and self.containers.seen else None
        self.collector.update(Snapshot(dict(self.aggregate), gauges, objective, containers))

    def run(self, max_seconds: float | None = None) -> None:
        """Loop until :attr:`stop_event` is set (or ``max_seconds`` passed)."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        while not self.stop_event.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            self.poll()

    def close(self) -> None:
        self.client.close()
