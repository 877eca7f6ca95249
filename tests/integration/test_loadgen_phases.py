"""loadgen's phases against the real simulator, users in this process (``LocalWorker``): records keep
the phase they were scheduled in, each phase runs only its role, a graceful stop and the drain let
what is in flight finish and send nothing new."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import gevent
import pytest

from loadgen.config import PHASE_MESSAGE, PhaseCommand
from loadgen.local import LocalWorker
from loadgen.records import RequestRecord
from tests.factories import synthetic_workload, worker_config
from tests.fixtures.simulator import run_simulator
from tests.fixtures.waiting import wait_for

PACED = {"step_overhead_s": 0.01}  # 'instant' engine, one token per stream every 10 ms


@contextlib.contextmanager
def paced_worker(
    workload: str, output: int, stop_timeout: float = 0.0
) -> Iterator[tuple[LocalWorker, list[RequestRecord]]]:
    """A worker in this process against the paced simulator, and the records its users make: one
    workload of 20-token prompts answered with exactly ``output`` tokens (``output`` x 10 ms each)."""
    with run_simulator(PACED, preset="instant") as sim:
        cfg = worker_config(sim.base_url, [synthetic_workload(workload, 20, output)])
        records: list[RequestRecord] = []
        with LocalWorker(cfg, record=records.append, stop_timeout=stop_timeout) as worker:
            yield worker, records


def _open_burst(name: str, rate: float, max_concurrency: int) -> PhaseCommand:
    return PhaseCommand(
        name=name, mode="open", rate=rate, arrival={"kind": "constant"}, max_concurrency=max_concurrency
    )


def test_records_carry_the_phase_they_were_scheduled_in() -> None:
    """Units queued in the client (one slot) when the next phase begins still belong to the first."""
    with paced_worker("q", 10) as (worker, records):
        worker.start(_open_burst("a", 20, 1))
        # 20/s into one slot (~10/s): units queue in the client; one sending and two waiting
        wait_for(lambda: len(worker.runtime.open_units) >= 3, timeout=10, what="units queued in the client")
        switch = time.monotonic()
        worker.runner.send_message(PHASE_MESSAGE, _open_burst("b", 0.05, 1).model_dump(mode="json"))
        wait_for(lambda: not len(worker.runtime.open_units), timeout=10, what="phase a's queued units to finish")
        worker.runner.stop()
    assert records and all(r.ok for r in records)
    assert all(r.scheduled < switch for r in records)  # phase b sends its first in 20 s
    crossed = [r for r in records if r.started > switch]
    assert len(crossed) >= 2  # queued across the boundary: the case that matters
    assert {r.phase for r in records} == {"a"}


@pytest.mark.parametrize("stop_timeout", [5.0, 0.0])
def test_open_loop_requests_in_flight_drain_at_a_graceful_stop(stop_timeout: float) -> None:
    """A graceful stop (the run's drain) lets open-loop requests finish, as closed users do;
    a forced one (stop timeout 0, Ctrl-C) cancels them at once. Nothing new is sent meanwhile."""
    with paced_worker("slow", 60, stop_timeout=stop_timeout) as (worker, records):
        worker.start(_open_burst("open", 10, 64))
        counters = worker.runtime.requester.counters
        wait_for(lambda: counters.in_flight >= 5, timeout=10, what="5 requests in flight")  # ~0.6 s each
        stopped = time.monotonic()
        worker.runner.stop()
        assert not len(worker.runtime.open_units)
    assert len(records) >= 5
    assert all(r.scheduled < stopped for r in records)
    if stop_timeout:
        assert all(r.ok for r in records), [r.outcome for r in records]
        assert max(r.end for r in records) > stopped + 0.1  # they really were still in flight
    else:
        assert any(r.outcome == "cancelled" for r in records)
        assert max(r.end for r in records) < stopped + 0.1


def test_each_phase_runs_only_its_role_closed_open_closed() -> None:
    """Locust alone would keep users of the previous phase's class (a ramp-down removes the last
    spawned, whatever their class): 5 closed users then an open phase would leave one closed user
    and no dispatcher. Each phase change here leaves exactly the new phase's users."""
    switches: dict[str, float] = {}
    with paced_worker("q", 20, stop_timeout=5.0) as (worker, records):

        def counts() -> dict[str, int]:
            return worker.runner.user_classes_count

        plan = [
            (PhaseCommand(name="c1", mode="closed", users=5), {"ClosedLoopUser": 5, "OpenLoopDispatcher": 0}),
            (_open_burst("o", 20, 64), {"ClosedLoopUser": 0, "OpenLoopDispatcher": 1}),
            (PhaseCommand(name="c2", mode="closed", users=3), {"ClosedLoopUser": 3, "OpenLoopDispatcher": 0}),
        ]
        for phase, expected in plan:
            switches[phase.name] = time.monotonic()
            worker.start(phase)
            wait_for(
                lambda e=expected: counts() == e,
                timeout=10,
                what=lambda p=phase, e=expected: f"{p.name}: {counts()} == {e}",
            )
            gevent.sleep(1.0)  # the test: the phase runs a second with nothing changing
            assert counts() == expected  # and it stays so
        worker.runner.stop()
    by_phase: dict[str, list[RequestRecord]] = {}
    for r in records:
        by_phase.setdefault(r.phase, []).append(r)
    assert set(by_phase) == {"c1", "o", "c2"}
    assert all(r.ok for r in records), {r.outcome for r in records}  # a closed user's last unit finished
    # closed phases: only closed users sent (a user id each); the open phase: only the dispatcher
    assert len({r.user_id for r in by_phase["c1"]}) == 5 and None not in {r.user_id for r in by_phase["c1"]}
    assert all(r.user_id is None for r in by_phase["o"])
    assert len({r.user_id for r in by_phase["c2"]}) == 3 and None not in {r.user_id for r in by_phase["c2"]}
    # nothing is scheduled in a phase by a role it does not use
    assert all(r.scheduled < switches["o"] + 0.05 for r in by_phase["c1"])
    assert all(switches["o"] <= r.scheduled < switches["c2"] + 0.05 for r in by_phase["o"])
    assert 15 <= len(by_phase["o"]) <= 40  # 20/s for ~1-1.5 s: one dispatcher, not several


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_drain_schedules_nothing_new_and_lets_what_is_in_flight_finish(mode: str) -> None:
    """The end of a run: after ``finishline_drain`` nothing new is sent, every request in flight
    finishes (none cancelled) while the users still run, and the records keep the phase's name."""
    with paced_worker("slow", 60, stop_timeout=5.0) as (worker, records):
        phase = _open_burst("last", 10, 64) if mode == "open" else PhaseCommand(name="last", mode="closed", users=4)
        worker.start(phase)
        counters = worker.runtime.requester.counters
        # each request streams for ~0.6 s: the first ones are still in flight at the drain
        wait_for(lambda: counters.requests >= 3 and counters.in_flight > 0, timeout=10, what="3 requests sent")
        users = worker.runner.user_count
        drained = time.monotonic()
        worker.drain()
        wait_for(lambda: counters.in_flight == 0, timeout=5, what="the requests in flight to finish")
        finished = time.monotonic()
        sent = counters.requests
        gevent.sleep(0.5)  # the test: half a second in which nothing new may be sent
        assert counters.requests == sent  # still nothing new
        assert worker.runner.user_count == users  # the users idle; the run stops them
        assert worker.runtime.load_state().target_rate is None
        worker.runner.stop()
    assert len(records) == sent >= 3
    assert all(r.ok for r in records), [r.outcome for r in records]
    assert all(r.scheduled <= drained for r in records)
    assert max(r.end for r in records) > drained + 0.1  # they really were in flight
    assert finished - drained < 1.0
    assert {r.phase for r in records} == {"last"}
