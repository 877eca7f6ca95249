"""``coordinator.periodic.Periodic``: a task every so many seconds on a daemon thread, until stopped."""

from __future__ import annotations

import threading

from coordinator.periodic import Periodic
from tests.fixtures.waiting import wait_for


def test_a_task_runs_at_start_and_then_every_interval_until_stopped() -> None:
    runs: list[bool] = []
    periodic = Periodic("test-periodic", 0.01, lambda: runs.append(periodic.stopping), at_start=True)
    periodic.start()
    wait_for(lambda: len(runs) >= 3, timeout=5, what="three runs")
    periodic.stop(timeout=5)
    assert not any(runs)  # never told it was stopping while it ran before stop()
    assert "test-periodic" not in {t.name for t in threading.enumerate()}  # its thread has ended


def test_without_at_start_the_first_run_is_one_interval_later_and_stop_never_started_is_fine() -> None:
    ran = threading.Event()
    periodic = Periodic("test-periodic-later", 60.0, ran.set)
    periodic.start()
    periodic.stop(timeout=5)  # the wait is cut short: no run, no minute spent
    assert not ran.is_set() and periodic.stopping
    Periodic("never-started", 1.0, ran.set).stop(timeout=1)
