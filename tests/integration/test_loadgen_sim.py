"""loadgen against the real simulator and its ground-truth trace (same clock: time.monotonic):
what it measures, retries, error classes, sessions, chains, open-loop schedules.

Phase changes and the drain are ``test_loadgen_phases.py``; the client against stand-in servers
that need no process, ``tests/unit/test_loadgen_client.py``.
"""

from __future__ import annotations

import itertools
import os
import statistics
import urllib.request
from typing import Any

import gevent
from gevent.monkey import get_original
from prometheus_client.parser import text_string_to_metric_families

from loadgen import metrics
from loadgen.client import EndpointClient
from loadgen.config import PhaseCommand, TargetConfig, WorkerConfig
from loadgen.local import LocalWorker
from loadgen.records import RequestRecord
from loadgen.spec import SamplingParams
from tests.factories import synthetic_workload, worker_config
from tests.fixtures.simulator import SimulatorHandle, run_simulator
from tests.fixtures.waiting import wait_for


def run_closed(cfg: WorkerConfig, users: int, seconds: float, think: float = 0.0) -> tuple[list[RequestRecord], Any]:
    records: list[RequestRecord] = []
    with LocalWorker(cfg, record=records.append) as worker:
        worker.run_phase(PhaseCommand(name="closed", mode="closed", users=users, think_time=think), seconds)
        stats = worker.environment.stats
    return records, stats


def by_id(trace: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in trace}


def trace_of(sim: SimulatorHandle, records: list[RequestRecord]) -> dict[str, dict[str, Any]]:
    """The simulator's trace by completion id, once it holds a line for every request that succeeded
    (the server writes one as it finishes a reply, a moment after the client has it)."""
    wanted = {r.final.response_id for r in records if r.ok}
    wait_for(lambda: wanted <= by_id(sim.read_trace()).keys(), timeout=10, what=f"trace lines of {len(wanted)} replies")
    return by_id(sim.read_trace())


def test_ttft_itl_and_tokens_match_the_trace_at_64_streams() -> None:
    with run_simulator(preset="gpu-8b") as sim:
        cfg = worker_config(sim.base_url, [synthetic_workload("chat", 200, {"kind": "uniform", "min": 16, "max": 112})])
        records, stats = run_closed(cfg, users=64, seconds=6)
        trace = trace_of(sim, records)
    ok = [r for r in records if r.ok]
    assert len(ok) >= 150
    # A user's first request also opens its connection (TCP handshake, the server's accept queue
    # under a 64-connection burst), which the server's trace cannot see: compare the rest.
    first = {}
    for r in sorted(records, key=lambda r: r.scheduled):
        first.setdefault(r.user_id, r.id)
    warm = [r for r in ok if r.id not in set(first.values())]
    assert len(warm) >= 100
    ttft_err, itl_err = [], []
    for r in warm:
        a, t = r.final, trace[r.final.response_id]
        assert a.output_tokens == t["output_tokens"] == sum(a.chunk_tokens)
        assert a.prompt_tokens == t["prompt_tokens"] and not a.tokens_estimated
        ttft_err.append(abs(metrics.ttft(a) - (t["token_times"][0] - t["arrival"])))
        arrivals = [a.sent + us / 1e6 for us in a.chunk_us]
        truth = t["token_times"]
        itl_err += [abs((arrivals[i] - arrivals[i - 1]) - (truth[i] - truth[i - 1])) for i in range(1, len(truth))]
    # The trace's arrival is the kernel's receive time of the request's first bytes: after the client
    # sent it, and before the handler (the server's event loop and parser come between).
    for r in warm:
        t = trace[r.final.response_id]
        assert r.final.sent <= t["arrival"] <= t["handler"], (r.final.sent, t["arrival"], t["handler"])
    send = statistics.median(trace[r.final.response_id]["arrival"] - r.final.sent for r in warm)
    stamp = statistics.median(r.final.first_token - trace[r.final.response_id]["token_times"][0] for r in warm)
    assert statistics.median(ttft_err) <= 0.002, (
        f"TTFT median error {statistics.median(ttft_err) * 1e3:.2f} ms (send->server kernel {send * 1e3:.2f} ms,"
        f" server write->client stamp {stamp * 1e3:.2f} ms; is the machine busy? load {os.getloadavg()[0]:.1f})"
    )
    assert statistics.median(itl_err) <= 0.002, f"ITL median error {statistics.median(itl_err) * 1e3:.2f} ms"
    # Locust's own statistics show E2E and TTFT entries
    assert stats.get("chat", "POST").num_requests >= len(ok)
    assert stats.get("chat", "TTFT").num_requests >= len(ok)


def test_multi_token_chunks_are_accounted_per_token() -> None:
    with run_simulator(config={"tokens_per_chunk": 4}, preset="gpu-8b") as sim:
        cfg = worker_config(sim.base_url, [synthetic_workload("chunky", 50, 30)])
        records, _ = run_closed(cfg, users=4, seconds=2)
        trace = trace_of(sim, records)
    ok = [r for r in records if r.ok]
    assert ok
    for r in ok:
        a = r.final
        assert a.output_tokens == 30 == trace[a.response_id]["output_tokens"]
        assert a.chunk_tokens == [4] * 7 + [2]
        gaps = list(metrics.itl(a))
        assert len(gaps) == 30 - 4  # every token after the first chunk has an ITL sample
        assert metrics.tpot(a) is not None and metrics.tpot(a) > 0


def test_retry_after_is_honoured_and_exhausted_retries_fail_with_their_class() -> None:
    with run_simulator(
        config={"faults": {"rates": {"429": 0.5}, "retry_after_seconds": 1}, "seed": 3}, preset="gpu-8b"
    ) as sim:
        cfg = worker_config(
            sim.base_url,
            [
                synthetic_workload("flaky", 20, 5, ignore_eos=False),
                synthetic_workload("always429", 20, 5, ignore_eos=False, headers={"X-Finishline-Fault": "429"}),
            ],
            retry={"max_attempts": 3, "backoff_initial": 0.05, "jitter": 0.5},
        )
        records, stats = run_closed(cfg, users=6, seconds=4.5)
    retried = [r for r in records if r.workload == "flaky" and r.ok and r.retries >= 1]
    assert retried, "no request was retried after a 429"
    for r in retried:
        first, second = r.attempts[0], r.attempts[1]
        assert first.status == 429 and first.error == "http_429"
        assert second.sent - first.end >= 1.0  # Retry-After: 1
        assert second.retry_wait >= 1.0
        assert metrics.user_latency(r) >= 1.0 + metrics.e2e(r.final)
    exhausted = [r for r in records if r.workload == "always429" and len(r.attempts) == 3 and r.outcome != "cancelled"]
    assert exhausted
    for r in exhausted:
        assert r.outcome == "http_429" and [a.number for a in r.attempts] == [1, 2, 3]
    failures = stats.get("always429", "POST").num_failures
    assert failures >= 3 * len(exhausted)


def test_error_classes_are_recorded_and_users_survive() -> None:
    faults = {"reset": 0.15, "malformed": 0.15, "cut": 0.15, "500": 0.15}
    with run_simulator(config={"faults": {"rates": faults, "after_tokens": 2}, "seed": 1}, preset="gpu-8b") as sim:
        cfg = worker_config(sim.base_url, [synthetic_workload("faulty", 20, 8, ignore_eos=False)])
        records: list[RequestRecord] = []
        with LocalWorker(cfg, record=records.append) as worker:
            worker.run_phase(PhaseCommand(name="p", mode="closed", users=8), 3)
            assert worker.runner.user_count == 0  # stopped by us, not by an error
    outcomes = {r.outcome for r in records}
    assert {"ok", "reset", "malformed_chunk", "incomplete_stream", "http_5xx"} <= outcomes
    per_user: dict[int | None, int] = {}
    for r in records:
        per_user[r.user_id] = per_user.get(r.user_id, 0) + 1
    assert len(per_user) == 8 and min(per_user.values()) >= 5  # every user kept going after errors
    reset = next(r for r in records if r.outcome == "reset")
    assert reset.final.output_tokens == 2  # what arrived before the failure is kept


def test_session_prompts_grow_turn_by_turn() -> None:
    with run_simulator(preset="gpu-8b") as sim:
        session = {"turns": 4, "think_time": {"min": 0.05, "max": 0.1}}
        cfg = worker_config(sim.base_url, [synthetic_workload("chat", 30, 10, session=session)])
        records, _ = run_closed(cfg, users=2, seconds=3)
        trace = trace_of(sim, records)
    sessions: dict[str, list[RequestRecord]] = {}
    for r in records:
        if r.ok:
            sessions.setdefault(r.session_id or "", []).append(r)
    complete = [s for s in sessions.values() if len(s) == 4]
    assert complete
    for turns in complete:
        turns.sort(key=lambda r: int(r.step or 0))
        prompts = [trace[r.final.response_id]["prompt_tokens"] for r in turns]
        assert all(b > a + 10 for a, b in itertools.pairwise(prompts)), prompts  # history + reply + new turn
        for k, r in enumerate(turns, 1):  # the estimate sums the counts the session keeps of its history
            assert r.estimated_prompt_tokens == prompts[k - 1] - 4 * (2 * k - 1) - 3  # less the chat overhead
        gaps = [b.final.sent - a.final.end for a, b in itertools.pairwise(turns)]
        assert all(g >= 0.05 for g in gaps)  # think time between turns


def test_chain_passes_outputs_and_fans_out_concurrently() -> None:
    with run_simulator(preset="gpu-8b") as sim:
        steps = [
            {"id": "plan", "prompt": "Plan for: {{input}}"},
            {"id": "left", "prompt": "Do the left part of {{plan}}", "output": 20},
            {"id": "right", "prompt": "Do the right part of {{plan}}", "output": 20},
            {"id": "merge", "prompt": "Merge {{left}} with {{right}}"},
        ]
        cfg = worker_config(sim.base_url, [synthetic_workload("agent", 20, 12, chain={"steps": steps})])
        records, _ = run_closed(cfg, users=1, seconds=2.5)
        trace = trace_of(sim, records)
    chains: dict[str, dict[str, RequestRecord]] = {}
    for r in records:
        if r.ok:
            chains.setdefault(r.session_id or "", {})[r.step or ""] = r
    full = [c for c in chains.values() if len(c) == 4]
    assert full
    for c in full:
        plan, left, right, merge = c["plan"].final, c["left"].final, c["right"].final, c["merge"].final
        # step 2's prompt = its template's words (5) + step 1's whole reply + chat overhead (4 + 3)
        assert trace[left.response_id]["prompt_tokens"] == 5 + plan.output_tokens + 7
        assert trace[merge.response_id]["prompt_tokens"] == 2 + left.output_tokens + right.output_tokens + 7
        # fan-out: both branches start when the plan ends and overlap in time, on the server too
        assert abs(left.sent - right.sent) < 0.02 and left.sent >= plan.end  # one wake-up apart, or an OS hiccup
        assert left.sent < right.end and right.sent < left.end
        tl, tr = trace[left.response_id], trace[right.response_id]
        assert tl["arrival"] < tr["finish"] and tr["arrival"] < tl["finish"]
        assert merge.sent >= max(left.end, right.end)


def test_open_loop_poisson_keeps_its_schedule_when_the_server_cannot() -> None:
    with run_simulator(preset="cpu-small") as sim:  # 4 slots at ~70 tok/s: far below 12 req/s x 16 tokens
        cfg = worker_config(sim.base_url, [synthetic_workload("burst", 20, 16)])
        records: list[RequestRecord] = []
        with LocalWorker(cfg, record=records.append) as worker:
            phase = PhaseCommand(name="over", mode="open", rate=12, arrival={"kind": "poisson"}, max_concurrency=512)
            worker.run_phase(phase, 5)
        trace = trace_of(sim, records)
    assert 35 <= len(records) <= 95  # ~60 expected from a Poisson process at 12/s for 5 s
    delays = sorted(metrics.dispatch_delay(r) for r in records)
    # median within 2 ms, none beyond the self-check's 50 ms (an OS hiccup on a shared machine is
    # up to ~25 ms; a client that waited for replies would be seconds late)
    assert delays[len(delays) // 2] < 0.002 and delays[-1] < 0.05, delays[-5:]
    ok = sorted((r for r in records if r.ok), key=lambda r: r.scheduled)
    assert len(ok) >= 8
    e2e = [metrics.e2e(r.final) for r in ok]
    assert statistics.fmean(e2e[-4:]) > 2 * statistics.fmean(e2e[:4])  # the queue grows on the server
    # the server saw each request when it was scheduled, not when an earlier reply came back
    lag = [trace[r.final.response_id]["arrival"] - r.scheduled for r in ok]
    # arrival at the server: the send plus its accept and parse (median 2.8 ms measured in a CI rehearsal)
    assert statistics.median(lag) < 0.005 and max(lag) < 0.05, sorted(lag)[-5:]  # queued: seconds


def test_timeouts_and_connect_errors_are_classified() -> None:
    from coordinator.services.ports import free_port

    # every stream pauses a second: each attempt ends at its timeout
    stalled = synthetic_workload("stalled", 10, 20, ignore_eos=False, headers={"X-Finishline-Fault": "stall:1"})
    with run_simulator(preset="gpu-8b") as sim:
        cfg = worker_config(
            sim.base_url,
            [stalled],
            retry={"attempt_timeout": 0.3, "max_attempts": 2, "backoff_initial": 0.01},
        )
        records, _ = run_closed(cfg, users=2, seconds=1.5)
        timed_out = [r for r in records if r.outcome == "timeout"]
        assert timed_out and all(len(r.attempts) == 2 for r in timed_out)
        assert all(0.29 <= metrics.e2e(a) < 0.5 for r in timed_out for a in r.attempts)
        # the overall deadline stops retrying and shortens the last attempt
        cfg = worker_config(
            sim.base_url,
            [stalled],
            retry={"attempt_timeout": 0.3, "max_attempts": 10, "backoff_initial": 0.05, "jitter": 0, "deadline": 0.5},
        )
        records, _ = run_closed(cfg, users=1, seconds=1.5)
    bounded = [r for r in records if r.outcome == "timeout"]
    assert bounded and all(len(r.attempts) == 2 for r in bounded)
    assert all(0.45 <= metrics.user_latency(r) < 0.6 for r in bounded)
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cfg = worker_config(
        nobody,
        [synthetic_workload("void", 10, 5, ignore_eos=False)],
        retry={"max_attempts": 2, "backoff_initial": 0.01},
    )
    records, stats = run_closed(cfg, users=1, seconds=0.5)
    assert records and all(r.outcome in ("connect_error", "cancelled") for r in records)
    assert any(r.outcome == "connect_error" and len(r.attempts) == 2 for r in records)
    assert stats.get("void", "POST").num_failures >= 2


def admitted(sim: SimulatorHandle) -> float:
    """Requests the simulator has begun (its queue-time histogram counts each at admission)."""
    with urllib.request.urlopen(sim.base_url + "/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "vllm:request_queue_time_seconds_count"
    )


def test_arrivals_carry_the_kernel_receive_time_not_when_a_busy_loop_read_them() -> None:
    """The loop is stuck (as under heavy load) while the first token arrives: its stamp is still
    when the bytes reached this machine, so the client's own lateness is not reported as TTFT."""
    blocking_sleep = get_original("time", "sleep")
    with run_simulator({"step_overhead_s": 0.2}, preset="instant") as sim:  # first token ~0.2 s after arrival
        client = EndpointClient(TargetConfig(base_url=sim.base_url + "/v1", model="sim"))
        # one token: a read that gets several packets carries the last one's stamp
        body = client.body("chat", True, [{"role": "user", "content": "hi"}], 1, SamplingParams(ignore_eos=True))
        try:
            client.send("chat", body, True)  # a warm pooled connection
            pending = gevent.spawn(client.send, "chat", body, True)
            # the server has begun it (queue time observed at admission): the first token is ~0.2 s away
            wait_for(lambda: admitted(sim) == 2, timeout=5, what="the simulator to admit the request", interval=0.01)
            blocking_sleep(0.4)  # the loop is stuck while the token arrives
            result = pending.get(timeout=10)
        finally:
            client.close()
        attempt = result.attempt
        trace = {t["id"]: t for t in sim.read_trace()}[attempt.response_id]
    assert attempt.ok and attempt.first_token is not None
    client_ttft = attempt.first_token - attempt.sent
    server_ttft = trace["token_times"][0] - trace["arrival"]
    assert 0.15 < server_ttft < 0.35
    assert abs(client_ttft - server_ttft) < 0.02, (client_ttft, server_ttft)
