"""What can go wrong while a run goes on, noticed as it happens and accounted for at the end.

- :class:`DownDetector`: every request failing for ``checks.abort_when_down_s`` seconds means
  the target is down; the run ends early (exit 6) instead of hammering it.
- :func:`redis_exit`: the run's own redis-server exited; said within a poll of the run's loop.
- :func:`account_losses`: records a worker had begun and that never arrived, per worker, and
  the workers lost mid-run (which, when, how many users ran short for how long).
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping

from coordinator.results.losses import Losses, LostWorker
from coordinator.run.cluster import WorkerLoss
from loadgen.errors import ServiceError
from loadgen.records import RequestRecord
from loadgen.samples import WorkerSample

MIN_FAILURES = 10  # fewer failures than this never say "down", however long they took


class TargetDown(Exception):
    """Every request failed for the configured time: the run ends early with this reason."""


class RedisLost(ServiceError):
    """The run's Redis went away: collection stops; what was collected is kept."""


class DownDetector:
    """Fed every collected batch (collector thread); :meth:`down` says whether the target looks down."""

    def __init__(self, window_s: float | None) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._first_failure: float | None = None  # monotonic s: the first failure since the last success
        self._failures: Counter[str] = Counter()

    def feed(self, records: Iterable[RequestRecord]) -> None:
        with self._lock:
            for rec in records:
                if rec.ok:
                    self._first_failure = None
                    self._failures.clear()
                else:
                    if self._first_failure is None:
                        self._first_failure = rec.end
                    self._failures[rec.outcome] += 1

    def down(self, now: float | None = None) -> str | None:
        """The reason to end the run, or None."""
        if self.window_s is None:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = sum(self._failures.values())
            if self._first_failure is None or failures < MIN_FAILURES or now - self._first_failure < self.window_s:
                return None
            classes = ", ".join(f"{n} {cls}" for cls, n in self._failures.most_common())
        return (
            f"target down: every request failed for {now - self._first_failure:.0f} s ({classes}); "
            "the run ended early (checks.abort_when_down_s)"
        )


def redis_exit(process: subprocess.Popen[bytes] | None) -> str | None:
    """Why the run's redis-server is gone, or None while it runs."""
    if process is None or process.poll() is None:
        return None
    code = process.returncode
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    return f"the run's redis-server exited ({how}); records collected so far are kept"


def account_losses(
    lost_workers: Iterable[WorkerLoss],
    lost_by_worker: Mapping[str, int],
    latest: Mapping[str, WorkerSample],
    started: float,
    ended: float,
    dropped: int = 0,
) -> Losses:
    """Put together what the cluster saw go and what the collector counted missing."""
    by_worker = {w: n for w, n in lost_by_worker.items() if n > 0}
    workers = []
    for loss in lost_workers:
        last = latest.get(loss.worker)
        short = (loss.rebalanced_at - loss.lost_at) if loss.rebalanced_at is not None else None
        users = last.users if last is not None else loss.users
        workers.append(
            LostWorker(
                worker=loss.worker,
                lost_after_s=max(0.0, loss.lost_at - started),
                exit_code=loss.exit_code,
                users=users,
                short_for_s=max(0.0, short) if short is not None else (ended - loss.lost_at if users else None),
                records_lost=by_worker.get(loss.worker, 0),
            )
        )
    return Losses(
        records_lost=sum(by_worker.values()), by_worker=by_worker, workers_lost=tuple(workers), dropped=dropped
    )
