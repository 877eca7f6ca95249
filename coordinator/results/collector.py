"""The collector: the one reader that turns the run's Redis Stream into ``records.jsonl.gz``.

It reads with the consumer group ``collector`` and acknowledges an entry only after the
record is flushed to the file, so a collector that dies loses nothing: the next one claims
the pending entries. Records are de-duplicated by record id (ids already in the file are
loaded at start), so each record is written exactly once even across restarts.
An entry that holds no readable record is set aside in ``rejected.jsonl`` with the reason
(the reader's policy, ``loadgen.stream.GroupReader``) and collection goes on.
Worker samples (CPU, loop lag) are read from the samples stream for the self-check.
"""

from __future__ import annotations

import gzip
import os
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import redis

from loadgen.records import RequestRecord
from loadgen.samples import WorkerSample
from loadgen.stream import Batch, GroupReader, SampleReader, Unreadable, read_hash, stream_keys

GROUP = "collector"
RECORDS_FILE = "records.jsonl.gz"
SAMPLES_FILE = "samples.jsonl.gz"
REJECTED_FILE = "rejected.jsonl"  # entries no record could be read from, kept as they came, with why


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


class Collector:
    """Reads records and samples of one run; call :meth:`start` (thread) or :meth:`poll` yourself."""

    def __init__(
        self,
        redis_url: str,
        run_id: str,
        run_dir: Path,
        consumer: str = "collector-1",
        on_batch: Callable[[list[RequestRecord]], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.run_dir = Path(run_dir)
        self.consumer = consumer
        self.on_batch = on_batch
        keys = stream_keys(run_id)
        self.records_key: str = keys.records
        self.progress_key: str = keys.progress
        self._redis = redis.Redis.from_url(redis_url)
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._samples: list[WorkerSample] = []
        self._latest: dict[str, WorkerSample] = {}  # worker -> its newest sample
        self._phase_counts: Counter[str] = Counter()
        self._worker_counts: Counter[str] = Counter()  # records received per worker
        self._begun: dict[str, int] = {}  # worker -> logical requests it said it had begun (its last flush)
        self._seen: set[str] = set()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.rejected = 0  # unreadable entries set aside in REJECTED_FILE
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._path = self.run_dir / RECORDS_FILE
        self._recover_file()
        # Only one collector reads a run: any entry pending on another consumer name is a dead
        # collector's, claimed at the first read.
        self.reader = GroupReader(
            self._redis, keys.records, GROUP, consumer, on_unreadable=self._reject, count=2000, claim_idle_s=0.0
        )
        self.sample_reader = SampleReader(self._redis, keys.samples)
        self._file = gzip.open(self._path, "ab")  # last: nothing above can leave it open

    # -- setup ---------------------------------------------------------------------------

    def _recover_file(self) -> None:
        """Load ids already written and rewrite the file whole (a crash may have cut its tail)."""
        if not self._path.exists():
            return
        lines = list(_read_lines(self._path))
        tmp = self._path.with_suffix(".tmp")
        with gzip.open(tmp, "wb") as out:
            for line in lines:
                out.write(line + b"\n")
        os.replace(tmp, self._path)
        recovered = [RequestRecord.from_json(line) for line in lines]
        self._seen.update(rec.id for rec in recovered)
        self._keep(recovered)

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
        return new

    def _read_progress(self) -> None:
        progress = {worker: int(begun) for worker, begun in read_hash(self._redis, self.progress_key).items()}
        with self._lock:
            self._begun.update(progress)

    def _apply(self, batch: Batch) -> int:
        if not batch.ids:
            return 0
        fresh: list[RequestRecord] = []
        for rec, raw in zip(batch.records, batch.raw, strict=True):
            if rec.id in self._seen:
                continue
            self._seen.add(rec.id)
            self._file.write(raw + b"\n")
            fresh.append(rec)
        if fresh:
            self._file.flush(zlib.Z_SYNC_FLUSH)
        self.reader.ack(batch)
        if fresh:
            self._keep(fresh)
            if self.on_batch is not None:
                self.on_batch(fresh)
        return len(fresh)

    def _reject(self, entry: Unreadable) -> None:
        """Set an entry aside instead of stopping: the records after it still count."""
        line = orjson.dumps({"reason": entry.reason, "entry": entry.fields})
        with open(self.run_dir / REJECTED_FILE, "ab") as fh:
            fh.write(line + b"\n")
        self.rejected += 1

    def _keep(self, records: list[RequestRecord]) -> None:
        """Records now in the file: kept for the summary and counted per phase."""
        with self._lock:
            self._records.extend(records)
            self._phase_counts.update(rec.phase for rec in records)
            self._worker_counts.update(rec.worker for rec in records)

    def _read_samples(self) -> None:
        batch = self.sample_reader.read().workers
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
        try:
            while not self._stop.is_set():
                self.poll(block_ms=200)
        except BaseException as exc:  # surfaced by finish(); the run keeps what it has
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
        if not self._file.closed:
            self._file.close()
        with self._lock:
            samples = list(self._samples)
        with gzip.open(self.run_dir / SAMPLES_FILE, "wb") as fh:
            for s in samples:
                fh.write(s.to_json() + b"\n")
        self._redis.close()

    # -- what others read ----------------------------------------------------------------

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def samples(self) -> list[WorkerSample]:
        with self._lock:
            return list(self._samples)

    def latest_samples(self) -> dict[str, WorkerSample]:
        with self._lock:
            return dict(self._latest)

    def phase_count(self, phase: str) -> int:
        with self._lock:
            return self._phase_counts.get(phase, 0)

    def received_from(self, worker: str) -> int:
        with self._lock:
            return self._worker_counts.get(worker, 0)

    def lost_by_worker(self) -> dict[str, int]:
        """Per worker that reported its progress: requests it had begun by its last flush and whose
        record never arrived (0 for a worker that ended cleanly)."""
        with self._lock:
            return {w: max(0, begun - self._worker_counts.get(w, 0)) for w, begun in self._begun.items()}

    def count(self) -> int:
        with self._lock:
            return len(self._records)
