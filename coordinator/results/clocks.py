"""Workers on other machines: their timestamps moved onto the coordinator's clock.

Every timestamp a worker takes is its own machine's ``CLOCK_MONOTONIC`` (``loadgen.records``):
every latency is a difference of two on one clock, exact wherever the worker runs. Only where
records or samples of several machines meet on one time axis (phase spans, the drain, plots of
figures over time) do their clocks need to agree. Processes on one kernel (local workers,
containers, network namespaces) share the clock, which their kernel boot id says; a worker on
another machine says when it sent its hello on its clock, and the master notes when it got it
on ours (``coordinator.run.master``): the difference is its **clock offset**, too large by the
hello's one-way delay (well under a millisecond on a LAN). The collector adds it to each
record's and sample's timestamps from that worker as they arrive, before anything reads them.
"""

from __future__ import annotations

import dataclasses

from loadgen.config import boot_id
from loadgen.records import Attempt, RequestRecord
from loadgen.samples import WorkerSample


def clock_offset(worker_boot: str, worker_clock: float, received: float) -> float:
    """Seconds to add to a worker's monotonic timestamps to put them on this machine's clock: 0 on
    this kernel, else when its hello came (``received``, ours) less when it was sent (``worker_clock``, its)."""
    if worker_boot and worker_boot == boot_id():
        return 0.0
    return received - worker_clock


def _attempt(a: Attempt, offset: float) -> Attempt:
    def move(t: float | None) -> float | None:
        return None if t is None else t + offset

    return dataclasses.replace(
        a,
        sent=a.sent + offset,
        end=a.end + offset,
        first_byte=move(a.first_byte),
        first_token=move(a.first_token),
        first_answer=move(a.first_answer),
    )


def record_on_our_clock(rec: RequestRecord, offset: float) -> RequestRecord:
    """``rec`` with every monotonic timestamp moved by ``offset`` (its durations unchanged)."""
    return dataclasses.replace(
        rec,
        scheduled=rec.scheduled + offset,
        started=rec.started + offset,
        end=rec.end + offset,
        attempts=[_attempt(a, offset) for a in rec.attempts],
    )


def sample_on_our_clock(sample: WorkerSample, offset: float) -> WorkerSample:
    return dataclasses.replace(sample, time=sample.time + offset)
