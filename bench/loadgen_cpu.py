"""Client CPU per streamed token and per request, and TTFT accuracy vs concurrency, for one worker.

Run: ``python bench/loadgen_cpu.py`` (about a minute). The simulator (preset ``instant``) runs
in another process and writes its ground-truth trace; this process is one finishline worker
(Locust users on a local runner) whose every record is shipped to a real redis-server by the
record sink, exactly as in a run. For comparison the same load is driven by a bare Locust
FastHttpUser that parses each event with ``json.loads`` and records nothing.

Figures: CPU us per token and per request (process user+sys time over the phase), and for a
sweep of concurrencies the TTFT error vs the trace (p50/p99), with the largest concurrency whose
p99 stays under 1 ms (and at every lower one). The error is split into request sent -> server
kernel receive (the client's write, loopback; the simulator stamps each request's first bytes
with the kernel's receive time, targets/simulator/stamps.py) and server write -> client stamp
(loopback and the client: arrivals carry the kernel's receive time, so ~0 when the client is
right); and, for comparison, the error against the server handler's clock, which also charges
the server's event loop and parser queue (kernel -> handler) to the client. Then long-context prompts (16k tokens): the cost of building and counting
one against one regex scan of its text (what every request paid before), and the event-loop lag
while users send them back to back.

Measured (2 cores shared with other work, load average 1.4-2.1; absolute times move with the load,
so compare the ratio to the bare user of the same run): 128 paced streams, finishline / bare
0.83-0.92 before the hot-path work of issue 13, 0.67-0.75 after (44-46 us vs 60-68 us per token);
preset 'instant' 0.99-1.13 before, 0.80-0.88 after. Figures and commands: the issue's closing note.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gevent
import locust  # noqa: F401 - monkey-patches before anything opens a socket
import orjson
import redis
from locust import FastHttpUser, task
from locust.env import Environment
from locust.event import Events

from coordinator.run.targets import simulator_command
from coordinator.services.ports import free_port
from coordinator.services.process import http_ok, start_process, stop_process
from coordinator.services.redis_server import RedisServer
from loadgen.config import PhaseCommand, WorkerConfig
from loadgen.corpus import count_tokens
from loadgen.local import LocalWorker
from loadgen.prompts import PromptFactory, estimated_prompt_tokens
from loadgen.records import RequestRecord
from loadgen.spec import WorkloadSpec
from loadgen.stream.keys import stream_keys

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_TOKENS = 128  # mean; lengths vary so that streams do not all end (and restart) in the same step


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Simulator:
    """``python -m targets.simulator`` in its own process, with a trace file."""

    def __init__(self, tmp: Path, preset: str, overrides: dict | None = None) -> None:
        self.port = free_port()
        self.trace = tmp / f"trace-{self.port}.jsonl"
        cfg = tmp / f"sim-{self.port}.json" if overrides else None  # JSON is YAML
        if cfg is not None:
            cfg.write_bytes(orjson.dumps(overrides))
        self.proc = start_process(
            simulator_command(self.port, preset=preset, config=cfg, trace=self.trace),
            ready=lambda: http_ok(f"{self.url}/health"),
            what="the simulator",
            timeout=20,
            log_path=tmp / f"sim-{self.port}.log",
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def read_trace(self) -> dict[str, dict]:
        if not self.trace.exists():
            return {}
        return {t["id"]: t for t in map(orjson.loads, self.trace.read_bytes().splitlines()) if t.get("id")}

    def stop(self) -> None:
        stop_process(self.proc)


def config(sim: Simulator, redis_url: str, run_id: str) -> WorkerConfig:
    return WorkerConfig.model_validate(
        {
            "run_id": run_id,
            "redis_url": redis_url,
            "target": {"base_url": sim.url + "/v1", "model": "sim"},
            "workloads": [
                {
                    "name": "bench",
                    "prompt": {"kind": "synthetic", "tokens": 64},
                    "output": {"kind": "uniform", "min": OUTPUT_TOKENS // 2, "max": OUTPUT_TOKENS * 3 // 2},
                    "sampling": {"ignore_eos": True},
                }
            ],
        }
    )


def finishline_run(sim: Simulator, redis_url: str, users: int, seconds: float, run_id: str) -> dict:
    """One closed phase; CPU over the phase, records read back from Redis afterwards."""
    cfg = config(sim, redis_url, run_id)
    with LocalWorker(cfg) as worker:
        cpu0, t0 = cpu_seconds(), time.monotonic()
        worker.run_phase(PhaseCommand(name="bench", mode="closed", users=users), seconds, spawn_rate=users * 4)
        worker.runtime.sink.flush()  # shipping is part of the cost
        cpu, wall = cpu_seconds() - cpu0, time.monotonic() - t0
    client = redis.Redis.from_url(redis_url)
    entries = client.xrange(stream_keys(run_id).records)
    client.close()
    records = [RequestRecord.from_json(fields[b"r"]) for _, fields in entries]
    tokens = sum(sum(r.final.chunk_tokens) for r in records)
    return {"records": records, "cpu": cpu, "wall": wall, "tokens": tokens, "requests": len(records)}


def ttft_errors(records: list[RequestRecord], trace: dict[str, dict]) -> dict[str, list[float]]:
    """Per warm request (each user's first one also opens a connection): |client TTFT - server
    TTFT|, and its two parts: request sent -> server handler (network, the server's HTTP layer)
    and server wrote the first token -> client stamped it (network, the client's event loop)."""
    first: dict[int | None, str] = {}
    for r in sorted(records, key=lambda r: r.scheduled):
        first.setdefault(r.user_id, r.id)
    skip = set(first.values())
    out: dict[str, list[float]] = {"ttft": [], "send": [], "receive": [], "ttft_handler": [], "parse": []}
    for r in records:
        a = r.final
        t = trace.get(a.response_id or "")
        if r.id in skip or not r.ok or t is None or not t["token_times"] or a.first_token is None:
            continue
        out["ttft"].append(abs((a.first_token - a.sent) - (t["token_times"][0] - t["arrival"])))
        out["send"].append(t["arrival"] - a.sent)
        out["receive"].append(a.first_token - t["token_times"][0])
        # against the handler's clock instead of the kernel's: what the trace said before it had stamps
        handler = t.get("handler", t["arrival"])
        out["ttft_handler"].append(abs((a.first_token - a.sent) - (t["token_times"][0] - handler)))
        out["parse"].append(handler - t["arrival"])  # the server's event loop and parser, before its handler
    return {k: sorted(v) for k, v in out.items()}


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


_bare_tokens = 0


class BareUser(FastHttpUser):
    """The comparison: Locust's FastHttpUser, each event parsed with json.loads, nothing recorded."""

    @task
    def chat(self) -> None:
        global _bare_tokens
        body = {
            "model": "sim",
            "messages": [{"role": "user", "content": "hello " * 64}],
            "max_tokens": random.randint(OUTPUT_TOKENS // 2, OUTPUT_TOKENS * 3 // 2),
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with self.client.post("/v1/chat/completions", json=body, stream=True, catch_response=True) as resp:
            buf = b""
            for data in resp.stream:
                buf += data
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    payload = event[6:]
                    if payload == b"[DONE]":
                        continue
                    obj = json.loads(payload)
                    for choice in obj.get("choices", []):
                        if choice.get("delta", {}).get("content"):
                            _bare_tokens += 1


def bare_run(sim: Simulator, users: int, seconds: float) -> dict:
    global _bare_tokens
    _bare_tokens = 0
    BareUser.host = sim.url
    env = Environment(user_classes=[BareUser], events=Events())
    runner = env.create_local_runner()
    cpu0 = cpu_seconds()
    runner.start(users, spawn_rate=users * 4)
    gevent.sleep(seconds)
    runner.stop()
    cpu = cpu_seconds() - cpu0
    requests = env.stats.total.num_requests
    runner.quit()
    return {"cpu": cpu, "tokens": _bare_tokens, "requests": requests}


PACED = {"step_overhead_s": 0.01}  # 'instant' engine, but one token per stream every 10 ms


def report(label: str, res: dict) -> float:
    per_tok = res["cpu"] / max(1, res["tokens"]) * 1e6
    per_req = res["cpu"] / max(1, res["requests"]) * 1e6
    rate = f", {res['tokens'] / res['wall']:.0f} tok/s" if "wall" in res else ""
    print(
        f"  {label:44s} {per_tok:6.1f} us CPU/token  {per_req:7.0f} us CPU/request"
        f"  ({res['tokens']} tokens, {res['requests']} requests{rate})"
    )
    return per_tok


def prompt_cost(tokens: int, repeats: int = 50) -> tuple[float, float]:
    """Seconds to build and count one long-context prompt, and to scan its text once."""
    factory = PromptFactory(WorkloadSpec(name="lc", prompt={"kind": "long_context", "tokens": tokens}))
    rng = random.Random(1)
    factory.conversation(rng)
    t0 = time.perf_counter()
    texts = []
    for _ in range(repeats):
        conv = factory.conversation(rng)
        estimated_prompt_tokens(conv.messages)
        texts.append(conv.messages[-1]["content"])
    built = (time.perf_counter() - t0) / repeats
    t0 = time.perf_counter()
    for text in texts:
        count_tokens(text)
    return built, (time.perf_counter() - t0) / repeats


def long_context_lag(sim: Simulator, redis_url: str, tokens: int, users: int, seconds: float) -> dict:
    """Closed users sending ``tokens``-token prompts back to back; a probe greenlet measures how
    late the loop wakes it (what the worker's self-check samples as loop lag)."""
    cfg = WorkerConfig.model_validate(
        {
            "run_id": f"lc-{tokens}",
            "redis_url": redis_url,
            "target": {"base_url": sim.url + "/v1", "model": "sim"},
            "workloads": [{"name": "lc", "prompt": {"kind": "long_context", "tokens": tokens}, "output": 8}],
        }
    )
    lags: list[float] = []
    busy: list[float] = []  # the part of each lag this process spent on the CPU (not descheduled)

    def probe() -> None:
        while True:
            asked, cpu = time.monotonic(), time.thread_time()
            gevent.sleep(0.005)
            lag = max(0.0, time.monotonic() - asked - 0.005)
            lags.append(lag)
            busy.append(min(lag, time.thread_time() - cpu))

    with LocalWorker(cfg) as worker:
        phase = PhaseCommand(name="lc", mode="closed", users=users)
        worker.start(phase, spawn_rate=users * 4)
        gevent.sleep(0.5)  # the users' start (Locust's spawning) is not the traffic's cost
        prober = gevent.spawn(probe)
        gevent.sleep(seconds)
        prober.kill()
        worker.runner.stop()
        worker.runtime.sink.flush()
        sent = worker.runtime.requester.counters.requests
    lags.sort()
    busy.sort()
    return {
        "requests": sent,
        "p99": pct(lags, 99),
        "max": lags[-1] if lags else float("nan"),
        "busy_p99": pct(busy, 99),
        "busy_max": busy[-1] if busy else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--users", type=int, default=128)
    parser.add_argument("--sweep", default="16,32,64,128,192,256")
    parser.add_argument("--long-context-tokens", type=int, default=16000)
    parser.add_argument("--only-long-context", action="store_true", help="run only the long-context figures")
    parser.add_argument("--only-ttft", action="store_true", help="skip the CPU figures, keep the TTFT sweep")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (other processes share them)")
    print(
        f"one worker process; simulator in another process; streams of {OUTPUT_TOKENS // 2}-{OUTPUT_TOKENS * 3 // 2} tokens; {args.seconds:g} s per run"
    )
    with tempfile.TemporaryDirectory(prefix="finishline-bench-") as tmp, RedisServer() as rs:
        if not args.only_long_context:
            throughput_and_ttft(args, Path(tmp), rs)
        tokens = args.long_context_tokens
        built, scan = prompt_cost(tokens)
        print(
            f"\nlong-context prompts of {tokens} tokens: build + count {built * 1e6:.0f} us; one regex scan of the "
            f"same text {scan * 1e6:.0f} us (ratio {built / scan:.3f}; each request paid a scan before)"
        )
        sim = Simulator(Path(tmp), "instant")
        try:
            for length, users in ((64, 16), (tokens, 4), (tokens, 16)):  # 64: the machine's own noise
                res = long_context_lag(sim, rs.url, length, users, min(args.seconds, 5.0))
                print(
                    f"  {length:6d}-token prompts, {users:3d} users back to back: event-loop lag p99 "
                    f"{res['p99'] * 1e3:6.2f} ms, max {res['max'] * 1e3:6.2f} ms; of it on this process's CPU "
                    f"p99 {res['busy_p99'] * 1e3:5.2f} ms, max {res['busy_max'] * 1e3:5.2f} ms "
                    f"({res['requests']} requests)"
                )
            print(f"  target: well under 10 ms at {tokens} tokens  (load average now {os.getloadavg()[0]:.2f})")
        finally:
            sim.stop()


def throughput_and_ttft(args: argparse.Namespace, tmp: Path, rs: RedisServer) -> None:
    """CPU per token against a paced and an unpaced server, then TTFT error by concurrency."""
    n = args.users
    if not args.only_ttft:
        print(f"\n{n} concurrent streams, paced server (a token per stream every 10 ms: one event per recv):")
        sim = Simulator(Path(tmp), "instant", PACED)
        try:
            fl = report(
                "finishline (every record shipped to redis)", finishline_run(sim, rs.url, n, args.seconds, "paced")
            )
            bare = report("bare FastHttpUser + json.loads, no records", bare_run(sim, n, args.seconds))
            print(f"  ratio finishline / bare: {fl / bare:.2f}   target: <= 50 us/token")
        finally:
            sim.stop()
        print(f"\n{n} concurrent streams, preset 'instant' (as fast as the server can; events batch per recv):")
        sim = Simulator(Path(tmp), "instant")
        try:
            report("finishline (every record shipped to redis)", finishline_run(sim, rs.url, n, args.seconds, "fast"))
            report("bare FastHttpUser + json.loads, no records", bare_run(sim, n, args.seconds))
        finally:
            sim.stop()
    print("\nTTFT error vs the simulator's trace (warm requests, paced server), by concurrency:")
    best = previous = 0
    for users in [int(u) for u in args.sweep.split(",")]:
        sim = Simulator(Path(tmp), "instant", PACED)
        try:
            res = finishline_run(sim, rs.url, users, min(args.seconds, 5.0), f"sweep-{users}")
            time.sleep(0.3)
            errs = ttft_errors(res["records"], sim.read_trace())
        finally:
            sim.stop()
        p50, p99 = pct(errs["ttft"], 50) * 1e3, pct(errs["ttft"], 99) * 1e3
        print(
            f"  {users:4d} streams: TTFT error p50 {p50:6.3f} ms  p99 {p99:7.3f} ms  "
            f"[send->server p50 {pct(errs['send'], 50) * 1e3:.2f} p99 {pct(errs['send'], 99) * 1e3:.2f}; "
            f"server write->client stamp p50 {pct(errs['receive'], 50) * 1e3:.2f} "
            f"p99 {pct(errs['receive'], 99) * 1e3:.2f}; "
            f"vs the handler's clock p50 {pct(errs['ttft_handler'], 50) * 1e3:.2f} "
            f"p99 {pct(errs['ttft_handler'], 99) * 1e3:.2f}, kernel->handler p99 {pct(errs['parse'], 99) * 1e3:.2f}]  "
            f"(n={len(errs['ttft'])}, client CPU {res['cpu'] / res['wall'] * 100:3.0f}% of a core)"
        )
        if p99 < 1.0 and best == previous:  # every lower concurrency of the sweep met it too
            best = users
        previous = users
    print(
        f"\nlargest concurrency per worker core with TTFT error p99 < 1 ms: {best or 'none of the sweep'}"
        f"  (load average now {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main()
