"""The collector: the one reader that turns the run's Redis Stream into ``records.jsonl.gz``.

It reads with the consumer group ``collector`` and acknowledges an entry only after the
record is flushed to the file, so a collector that dies loses nothing: the next one claims
the pending entries. Records are de-duplicated by record id against the ids collected lately
(:class:`RecentIds`; at start, the file's last ids), so each record is written exactly once
even across restarts. An entry that holds no readable record is set aside in
``rejected.jsonl`` with the reason (the reader's policy, ``loadgen.stream.group.GroupReader``) and
collection goes on. Worker samples (CPU, loop lag) are read from the samples stream for the
self-check.

A run may last hours: the collector keeps no record once it is in the file (the results read
the file back at the end), only counts per phase, the samples (one per worker per second) and
the recent ids; and it trims the stream below what every consumer group has acknowledged
(``loadgen.stream.trimming``), so Redis holds only what some reader still needs, whether or not
the bridge runs.
"""

from __future__ import annotations

import gzip
import os
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import redis

from coordinator.results.clocks import record_on_our_clock, sample_on_our_clock
from coordinator.results.files import write_atomic
from loadgen.records import RequestRecord
from loadgen.samples import WorkerSample
from loadgen.stream.group import Batch, GroupReader, Unreadable
from loadgen.stream.keys import read_hash, stream_keys
from loadgen.stream.samples import SampleReader
from loadgen.stream.trimming import trim

GROUP = "collector"
RECORDS_FILE = "records.jsonl.gz"
PARTIAL = ".partial"  # the records file's name while it is being written
REDIS_GRACE_S = 10.0  # how long Redis may be unreachable before the collector gives up
SAMPLES_FILE = "samples.jsonl.gz"
REJECTED_FILE = "rejected.jsonl"  # entries no record could be read from, kept as they came, with why
# A duplicate is a batch a worker's sink sent again because the reply to its first write was
# lost: it comes again once the sink's socket timed out (30 s), or later only when Redis was
# unreachable meanwhile, and then few records came in between. So ids are remembered for at
# least DEDUP_IDS further ids and DEDUP_SECONDS (both), and at most twice the larger of the
# two (RecentIds): about 110 bytes an id, 2.6 MB at 200 records/s, however long the run.
DEDUP_IDS = 10_000
DEDUP_SECONDS = 60.0
TRIM_EVERY_S = 5.0
# Trimming leaves the last seconds of entries even when every group has acknowledged them: a
# group created a little later (the bridge starts after the collector, and the pre-flight
# record is written in between) still reads them from the start of the stream.
TRIM_KEEP_S = 30.0


def read_records(path: Path) -> Iterator[RequestRecord]:
    """Every record of a records file; a tail cut short by a crash is skipped, not fatal."""
    for raw in _read_lines(path):
        yield RequestRecord.from_json(raw)


def _read_lines(path: Path) -> Iterator[bytes]:
    if not path.exists():
        return
    with gzip.open(path, "rb") as fh:
        while True:
            try:
                line = fh.readline()
            except (EOFError, zlib.error, gzip.BadGzipFile):
                return  # an unfinished gzip member: everything before it is kept
            if not line:
                return
            if line.endswith(b"\n"):
                yield line.rstrip(b"\n")


class RecentIds:
    """The record ids seen lately, in two generations of a set.

    The current generation takes new ids; when it holds ``min_ids`` and is ``min_s`` old it
    becomes the previous one, and the previous one is dropped. So an id is known for at least
    ``min_ids`` further ids and ``min_s`` seconds, however slowly or quickly records come,
    and memory holds at most twice the larger of the two.
    """

    def __init__(self, min_ids: int = DEDUP_IDS, min_s: float = DEDUP_SECONDS) -> None:
        self.min_ids = min_ids
        self.min_s = min_s
        self._current: set[str] = set()
        self._previous: set[str] = set()
        self._since = time.monotonic()

    def __contains__(self, rid: str) -> bool:
        return rid in self._current or rid in self._previous

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def add(self, rid: str) -> None:
        self._current.add(rid)
        if len(self._current) >= self.min_ids and time.monotonic() - self._since >= self.min_s:
            self._previous, self._current = self._current, set()
            self._since = time.monotonic()

    def update(self, rids: Iterable[str]) -> None:
        for rid in rids:
            self.add(rid)


@dataclass
class Found:
    """What a records file already held: counts, and the ids of its last records."""

    tail: deque[str]
    phases: Counter[str] = field(default_factory=Counter)
    workers: Counter[str] = field(default_factory=Counter)


def rewrite_whole(path: Path, keep_ids: int) -> Found | None:
    """Rewrite a records file a crash may have cut (its unfinished tail dropped), one line at a
    time; what it holds, or None when there is no such file."""
    if not path.exists():
        return None
    found = Found(tail=deque(maxlen=keep_ids))
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wb") as out:
        for line in _read_lines(path):
            rec = RequestRecord.from_json(line)
            found.tail.append(rec.id)
            found.phases[rec.phase] += 1
            found.workers[rec.worker] += 1
            out.write(line + b"\n")
    os.replace(tmp, path)
    return found


@dataclass
class FileCollection:
    """A run's records file finished without Redis (its Redis is gone): what results are written from."""

    path: Path

    @classmethod
    def finish(cls, run_dir: Path) -> FileCollection:
        final, partial = run_dir / RECORDS_FILE, run_dir / (RECORDS_FILE + PARTIAL)
        if rewrite_whole(partial, 0) is not None:
            os.replace(partial, final)
        return cls(final)

    def samples(self) -> list[WorkerSample]:
        path = self.path.parent / SAMPLES_FILE
        if not path.exists():
            return []
        return [WorkerSample.from_json(line) for line in _read_lines(path)]


class Collector:
    """Reads records and samples of one run; call :meth:`start` (thread) or :meth:`poll` yourself."""

    def __init__(
        self,
        redis_url: str,
        run_id: str,
        run_dir: Path,
        consumer: str = "collector-1",
        on_batch: Callable[[list[RequestRecord]], None] | None = None,
        *,
        trim_every_s: float | None = TRIM_EVERY_S,
        trim_keep_s: float = TRIM_KEEP_S,
        dedup_ids: int = DEDUP_IDS,
        dedup_s: float = DEDUP_SECONDS,
        redis_grace_s: float = REDIS_GRACE_S,
        clock_offsets: Mapping[str, float] | None = None,
    ) -> None:
        self.run_id = run_id
        # worker -> seconds from its clock to ours (workers on other machines, filled in as they
        # join): their records and samples are moved onto this machine's clock as they arrive
        self.clock_offsets: Mapping[str, float] = clock_offsets if clock_offsets is not None else {}
        self.redis_grace_s = redis_grace_s
        self.run_dir = Path(run_dir)
        self.consumer = consumer
        self.on_batch = on_batch
        keys = stream_keys(run_id)
        self.records_key: str = keys.records
        self.progress_key: str = keys.progress
        self._redis = redis.Redis.from_url(redis_url)
        self._lock = threading.Lock()
        self._samples: list[WorkerSample] = []
        self._latest: dict[str, WorkerSample] = {}  # worker -> its newest sample
        self._phase_counts: Counter[str] = Counter()
        self._worker_counts: Counter[str] = Counter()  # records received per worker
        self._begun: dict[str, int] = {}  # worker -> logical requests it has begun (the progress hash)
        self._written = 0  # records in the file, those found there at start included
        self._seen = RecentIds(dedup_ids, dedup_s)
        self.trim_every_s = trim_every_s  # None: never trim (someone else does)
        self.trim_keep_s = trim_keep_s
        self._next_trim = time.monotonic() + (trim_every_s or 0.0)
        self.trimmed = 0  # entries this collector trimmed from the stream
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.rejected = 0  # unreadable entries set aside in REJECTED_FILE
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # written as records.jsonl.gz.partial and renamed when finished: a file of that name is whole
        self.path = self.run_dir / RECORDS_FILE
        self._partial = self.run_dir / (RECORDS_FILE + PARTIAL)
        if self.path.exists() and not self._partial.exists():  # a finished file collected into again
            os.replace(self.path, self._partial)
        self._recover_file()
        # Only one collector reads a run: any entry pending on another consumer name is a dead
        # collector's, claimed at the first read.
        self.reader = GroupReader(
            self._redis, keys.records, GROUP, consumer, on_unreadable=self._reject, count=2000, claim_idle_s=0.0
        )
        self.sample_reader = SampleReader(self._redis, keys.samples)
        self._file = gzip.open(self._partial, "ab")  # noqa: SIM115 - open for the collector's life (close()); last: nothing above can leave it open

    # -- setup ---------------------------------------------------------------------------

    def _recover_file(self) -> None:
        """Count what is already written and note its last ids (:func:`rewrite_whole`).

        Only the tail's ids can come again: the entries an earlier collector wrote but did not
        acknowledge (one batch), and duplicates of records collected just before it.
        """
        found = rewrite_whole(self._partial, self._seen.min_ids)
        if found is None:
            return
        self._seen.update(found.tail)
        with self._lock:
            self._phase_counts.update(found.phases)
            self._worker_counts.update(found.workers)
            self._written += found.phases.total()

    # -- reading -------------------------------------------------------------------------

    def poll(self, block_ms: int = 200) -> int:
        """Read one batch of records, and the samples written since; returns records newly written."""
        try:
            new = self._apply(self.reader.read(block_ms))
        except BaseException:
            self.reader.reset()  # whatever was delivered and not acknowledged is read again first
            raise
        self._read_samples()
        self._read_progress()
        self._maybe_trim()
        return new

    def _read_progress(self) -> None:
        progress = {worker: int(begun) for worker, begun in read_hash(self._redis, self.progress_key).items()}
        with self._lock:
            self._begun.update(progress)

    def _maybe_trim(self) -> None:
        """Every ``trim_every_s``: drop the entries every group has acknowledged (the bridge's too)."""
        if self.trim_every_s is None or time.monotonic() < self._next_trim:
            return
        self._next_trim = time.monotonic() + self.trim_every_s
        self.trimmed += trim(self._redis, self.records_key, (GROUP,), keep_s=self.trim_keep_s)

    def _apply(self, batch: Batch) -> int:
        if not batch.ids:
            return 0
        fresh: list[RequestRecord] = []
        for rec, raw in zip(batch.records, batch.raw, strict=True):
            if rec.id in self._seen:
                continue
            self._seen.add(rec.id)
            offset = self.clock_offsets.get(rec.worker)
            if offset:
                rec = record_on_our_clock(rec, offset)
                raw = rec.to_json()
            self._file.write(raw + b"\n")
            fresh.append(rec)
        if fresh:
            self._file.flush(zlib.Z_SYNC_FLUSH)
        self.reader.ack(batch)
        if fresh:
            self._count(fresh)
            if self.on_batch is not None:
                self.on_batch(fresh)
        return len(fresh)

    def _reject(self, entry: Unreadable) -> None:
        """Set an entry aside instead of stopping: the records after it still count."""
        line = orjson.dumps({"reason": entry.reason, "entry": entry.fields})
        with open(self.run_dir / REJECTED_FILE, "ab") as fh:
            fh.write(line + b"\n")
        self.rejected += 1

    def _count(self, records: list[RequestRecord]) -> None:
        """Records now in the file: counted per phase (phases bounded by a number of requests)."""
        with self._lock:
            self._written += len(records)
            self._phase_counts.update(rec.phase for rec in records)
            self._worker_counts.update(rec.worker for rec in records)

    def _read_samples(self) -> None:
        batch = self.sample_reader.read().workers
        if self.clock_offsets:
            batch = [sample_on_our_clock(s, self.clock_offsets.get(s.worker, 0.0)) for s in batch]
        with self._lock:
            self._samples.extend(batch)
            for sample in batch:
                self._latest[sample.worker] = sample

    def pending(self) -> int:
        """Entries in the stream not yet acknowledged by this group (delivered or not)."""
        return self.reader.backlog()

    def drain(self, timeout: float = 30.0) -> None:
        """Read until the stream holds nothing unread (call after the workers have flushed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.poll(block_ms=100)
            if got == 0 and self.pending() == 0:
                break

    # -- background thread ---------------------------------------------------------------

    def start(self) -> Collector:
        self._thread = threading.Thread(target=self._loop, name="finishline-collector", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        """Read until stopped. Redis unreachable for a while (a restart, a network blip) is waited
        out for ``redis_grace_s``, the workers' sinks holding their records meanwhile; longer, and
        the run is told (``error``)."""
        unreachable_since: float | None = None
        try:
            while not self._stop.is_set():
                try:
                    self.poll(block_ms=200)
                    unreachable_since = None
                except redis.ConnectionError:
                    now = time.monotonic()
                    unreachable_since = unreachable_since or now
                    if now - unreachable_since > self.redis_grace_s:
                        raise
                    self._stop.wait(0.5)
        except BaseException as exc:  # noqa: BLE001 - surfaced by finish(); the run keeps what it has
            self.error = exc

    def stop_thread(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def finish(self, drain_timeout: float = 30.0) -> None:
        """Stop the thread, read what is left (if Redis is still up), close the files."""
        self.stop_thread()
        try:
            self.drain(drain_timeout)
        except redis.RedisError:
            pass
        finally:  # whatever stopped the drain, the file is finished and the samples kept
            self.close()

    def close(self) -> None:
        """Finish the records file (renamed whole to records.jsonl.gz) and write the samples."""
        if not self._file.closed:
            self._file.close()
            os.replace(self._partial, self.path)
        with self._lock:
            samples = list(self._samples)
        write_atomic(self.run_dir / SAMPLES_FILE, gzip.compress(b"".join(s.to_json() + b"\n" for s in samples)))
        self._redis.close()

    # -- what others read ----------------------------------------------------------------

    def samples(self) -> list[WorkerSample]:
        with self._lock:
            return list(self._samples)

    def latest_samples(self) -> dict[str, WorkerSample]:
        with self._lock:
            return dict(self._latest)

    def phase_count(self, phase: str) -> int:
        with self._lock:
            return self._phase_counts.get(phase, 0)

    @property
    def recent_ids(self) -> RecentIds:
        """The record ids remembered for de-duplication (a bounded window, not every id)."""
        return self._seen

    def received_from(self, worker: str) -> int:
        with self._lock:
            return self._worker_counts.get(worker, 0)

    def lost_by_worker(self) -> dict[str, int]:
        """Per worker that counted its requests: those it began whose record never arrived (0 for a
        worker that ended cleanly)."""
        with self._lock:
            return {w: max(0, begun - self._worker_counts.get(w, 0)) for w, begun in self._begun.items()}

    def count(self) -> int:
        """Records in the file (the results read them from :attr:`path`)."""
        with self._lock:
            return self._written
