"""The bridge's loop: read the run's records through consumer group ``bridge``, apply, expose.

Reading is :class:`~loadgen.stream.group.GroupReader`'s: this consumer's own pending entries (left
by a previous life of the same consumer name) until none are left, then entries of dead
consumers idle longer than ``reclaim_idle_s`` (``XAUTOCLAIM``), then new entries; an entry
with no readable record is counted (``finishline_bridge_invalid_entries``) and acknowledged.
Every batch is applied by :class:`~coordinator.bridge.store.BridgeStore` atomically with its
``XACK``; after any Redis error the in-memory aggregate is reloaded from Redis, which is the
truth, and the reader starts over with its own pending entries.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import Field

from coordinator.bridge.aggregate import add_itl, merge, record_increments
from coordinator.bridge.containers import ContainerGauges
from coordinator.bridge.exposition import BridgeCollector, Snapshot
from coordinator.bridge.gauges import Lease, LoadGauges
from coordinator.bridge.store import GROUP, BridgeStore
from loadgen.declaration import Spec
from loadgen.metrics import SloRule
from loadgen.stream.group import Batch, GroupReader, Unreadable
from loadgen.stream.keys import read_hash, stream_keys
from loadgen.stream.samples import SampleReader
from loadgen.stream.trimming import trim

log = logging.getLogger(__name__)


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
        state = read_hash(self.client, keys.state)
        self.scenario = options.scenario if options.scenario is not None else state.get("scenario", "")
        self.target = options.target if options.target is not None else state.get("target", "")
        self.slo = options.slo
        self.aggregate = self.store.load()
        self.gauges = LoadGauges()
        self.containers = ContainerGauges()
        self.samples = SampleReader.from_now(self.client, keys.samples, lookback_s=10.0)
        self.lease = Lease(self.client, f"{keys.bridge}:gauges", options.consumer)
        self.collector = BridgeCollector(options.run_id, self.scenario, self.target)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, ["run"], registry=self.registry).labels(options.run_id)

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
        self.reader = GroupReader(
            self.client,
            keys.records,
            GROUP,
            options.consumer,
            on_unreadable=self._unreadable,
            count=options.batch,
            claim_idle_s=options.reclaim_idle_s,
            claim_every_s=min(5.0, options.reclaim_idle_s / 2),
        )
        self._next_second = 0.0
        self._next_trim = 0.0
        self.stop_event = threading.Event()
        self._publish()

    def _unreadable(self, entry: Unreadable) -> None:
        log.warning("bridge: entry %s holds no readable record, skipped: %s", entry.id, entry.reason)
        self.invalid.inc()

    # -- applying ------------------------------------------------------------------------

    def apply(self, batch: Batch) -> int:
        """Count the batch's records once each and ack all its entries; returns records counted."""
        if not batch.ids:
            return 0
        entry_ids = batch.ids
        per_record: dict[str, tuple[float, dict[str, float], dict[str, list[float]]]] = {}
        for record in batch.records:
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
            batch = self.reader.read(self.options.block_ms)
            if batch.claimed:
                self.reclaimed.inc(batch.claimed)
            counted = self.apply(batch)
        except redis.RedisError as exc:
            log.warning("bridge: redis error, reloading state: %s", exc)
            time.sleep(0.2)
            self._resync()
            return 0
        now = time.monotonic()
        if now >= self._next_second:
            self._next_second = now + 1.0
            self.chores(now)
        self._publish()
        return counted

    def _resync(self) -> None:
        try:
            self.reader.reset()
            self.aggregate = self.store.load()
        except redis.RedisError:
            pass

    def chores(self, now: float) -> None:
        """The once-a-second work :meth:`poll` does: read the samples stream, renew the gauge lease,
        set the backlog gauge, and trim the stream when ``now`` (``time.monotonic()``) is past the
        next trim. Public so that a caller (a test) can have it done at once, on a clock it advances."""
        samples = self.samples.read()
        for sample in samples.workers:
            self.gauges.add(sample)
        for container in samples.containers:
            self.containers.add(container)
        self.lease.renew()
        self.backlog_gauge.set(self.backlog())
        if self.lease.held and now >= self._next_trim:
            self._next_trim = now + self.options.trim_interval_s
            self.trimmed.inc(trim(self.client, self.keys.records, self.options.trim_require))

    def backlog(self) -> int:
        """Entries the group has not acked yet: pending plus never delivered."""
        return self.reader.backlog()

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
