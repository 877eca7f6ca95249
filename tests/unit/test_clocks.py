"""Workers on other machines: records and samples moved onto the coordinator's clock."""

from __future__ import annotations

import dataclasses

from coordinator.results.clocks import clock_offset, record_on_our_clock, sample_on_our_clock
from loadgen import metrics
from loadgen.config import WorkerHello, boot_id
from tests.factories import varied_records, worker_samples


def test_a_worker_on_this_kernel_shares_the_clock_and_one_elsewhere_is_measured() -> None:
    here = boot_id()
    assert len(here) == 36  # a uuid: Linux says which kernel this is
    assert clock_offset(here, 5.0, 1005.0) == 0.0  # same kernel: CLOCK_MONOTONIC is one clock
    assert clock_offset("another-kernel", 5.0, 1005.25) == 1000.25  # its hello sent at 5 s, ours at 1005.25 s
    assert clock_offset("", 5.0, 7.0) == 2.0  # a worker that cannot tell is measured too
    hello = WorkerHello.here("box:7")
    assert hello.boot_id == here and hello.clock > 0


def test_every_timestamp_moves_and_every_figure_stays() -> None:
    for rec in varied_records(300):
        moved = record_on_our_clock(rec, 1000.5)
        assert (moved.scheduled, moved.started, moved.end) == (
            rec.scheduled + 1000.5,
            rec.started + 1000.5,
            rec.end + 1000.5,
        )
        assert moved.wall_time == rec.wall_time and moved.id == rec.id
        for a, b in zip(rec.attempts, moved.attempts, strict=True):
            assert b.sent == a.sent + 1000.5 and b.end == a.end + 1000.5
            for name in ("first_byte", "first_token", "first_answer"):
                before, after = getattr(a, name), getattr(b, name)
                assert (after is None) if before is None else abs(after - before - 1000.5) < 1e-9, name
            # the figures are differences on one clock: unchanged (to rounding)
            for figure in (metrics.ttft, metrics.tpot, metrics.e2e):
                x, y = figure(a), figure(b)
                assert (y is None) if x is None else abs(x - y) < 1e-6
            assert b.chunk_us == a.chunk_us
        # every other field is as it was
        same = {f.name for f in dataclasses.fields(rec)} - {"scheduled", "started", "end", "attempts"}
        assert all(getattr(rec, f) == getattr(moved, f) for f in same)
    (sample,) = worker_samples(1, start=3.0)
    assert sample_on_our_clock(sample, -2.0).time == 1.0
