"""Client CPU per streamed token and per request, and TTFT accuracy vs concurrency, for one worker.

Run: ``python bench/loadgen_cpu.py`` (about a minute). The simulator (preset ``instant``) runs
in another process and writes its ground-truth trace; this process is one finishline worker
(Locust users on a local runner) whose every record is shipped to a real redis-server by the
record sink, exactly as in a run. For comparison the same load is driven by a bare Locust
FastHttpUser that parses each event with ``json.loads`` and records nothing.

Figures: CPU us per token and per request (process user+sys time over the phase), and for a
sweep of concurrencies the TTFT error vs the trace (p50/p99), with the largest concurrency whose
p99 stays under 1 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gevent  # noqa: E402
import locust  # noqa: E402,F401  (monkey-patches before anything opens a socket)
import orjson  # noqa: E402
import redis  # noqa: E402
from locust import FastHttpUser, task  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.event import Events  # noqa: E402

from coordinator.services.ports import free_port  # noqa: E402
from coordinator.services.redis_server import RedisServer  # noqa: E402
from loadgen.config import PhaseCommand, WorkerConfig  # noqa: E402
from loadgen.local import LocalWorker  # noqa: E402
from loadgen.records import RequestRecord  # noqa: E402
from loadgen.sink import stream_keys  # noqa: E402

OUTPUT_TOKENS = 128  # mean; lengths vary so that streams do not all end (and restart) in the same step


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Simulator:
    """``python -m targets.simulator`` in its own process, with a trace file."""

    def __init__(self, tmp: Path, preset: str, overrides: dict | None = None) -> None:
        self.port = free_port()
        self.trace = tmp / f"trace-{self.port}.jsonl"
        self.log = open(tmp / f"sim-{self.port}.log", "wb")
        extra: list[str] = []
        if overrides:
            cfg = tmp / f"sim-{self.port}.json"  # JSON is YAML
            cfg.write_bytes(orjson.dumps(overrides))
            extra = ["--config", str(cfg)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "targets.simulator", "--preset", preset, "--host", "127.0.0.1",
             "--port", str(self.port), "--trace", str(self.trace), *extra],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        import urllib.request

        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("simulator did not start")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def read_trace(self) -> dict[str, dict]:
        if not self.trace.exists():
            return {}
        return {t["id"]: t for t in map(orjson.loads, self.trace.read_bytes().splitlines()) if t.get("id")}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


def config(sim: Simulator, redis_url: str, run_id: str) -> WorkerConfig:
    return WorkerConfig.model_validate({
        "run_id": run_id, "redis_url": redis_url,
        "target": {"base_url": sim.url + "/v1", "model": "sim"},
        "workloads": [{"name": "bench", "prompt": {"kind": "synthetic", "tokens": 64},
                       "output": {"kind": "uniform", "min": OUTPUT_TOKENS // 2, "max": OUTPUT_TOKENS * 3 // 2},
                       "sampling": {"ignore_eos": True}}],
    })


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
    out: dict[str, list[float]] = {"ttft": [], "send": [], "receive": []}
    for r in records:
        a = r.final
        t = trace.get(a.response_id or "")
        if r.id in skip or not r.ok or t is None or not t["token_times"] or a.first_token is None:
            continue
        out["ttft"].append(abs((a.first_token - a.sent) - (t["token_times"][0] - t["arrival"])))
        out["send"].append(t["arrival"] - a.sent)
        out["receive"].append(a.first_token - t["token_times"][0])
    return {k: sorted(v) for k, v in out.items()}


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


_bare_tokens = 0


class BareUser(FastHttpUser):
    """The comparison: Locust's FastHttpUser, each event parsed with json.loads, nothing recorded."""

    @task
    def chat(self) -> None:
        global _bare_tokens
        body = {"model": "sim", "messages": [{"role": "user", "content": "hello " * 64}], "max_tokens": random.randint(OUTPUT_TOKENS // 2, OUTPUT_TOKENS * 3 // 2),
                "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
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
    print(f"  {label:44s} {per_tok:6.1f} us CPU/token  {per_req:7.0f} us CPU/request"
          f"  ({res['tokens']} tokens, {res['requests']} requests{rate})")
    return per_tok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--users", type=int, default=128)
    parser.add_argument("--sweep", default="16,32,64,128,192,256")
    args = parser.parse_args()
    n = args.users
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (other processes share them)")
    print(f"one worker process; simulator in another process; streams of {OUTPUT_TOKENS // 2}-{OUTPUT_TOKENS * 3 // 2} tokens; {args.seconds:g} s per run")
    with tempfile.TemporaryDirectory(prefix="finishline-bench-") as tmp, RedisServer() as rs:
        print(f"\n{n} concurrent streams, paced server (a token per stream every 10 ms: one event per recv):")
        sim = Simulator(Path(tmp), "instant", PACED)
        try:
            fl = report("finishline (every record shipped to redis)", finishline_run(sim, rs.url, n, args.seconds, "paced"))
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
        best = 0
        for users in [int(u) for u in args.sweep.split(",")]:
            sim = Simulator(Path(tmp), "instant", PACED)
            try:
                res = finishline_run(sim, rs.url, users, min(args.seconds, 5.0), f"sweep-{users}")
                time.sleep(0.3)
                errs = ttft_errors(res["records"], sim.read_trace())
            finally:
                sim.stop()
            p50, p99 = pct(errs["ttft"], 50) * 1e3, pct(errs["ttft"], 99) * 1e3
            print(f"  {users:4d} streams: TTFT error p50 {p50:6.3f} ms  p99 {p99:7.3f} ms  "
                  f"[send->server p50 {pct(errs['send'], 50) * 1e3:.2f} p99 {pct(errs['send'], 99) * 1e3:.2f}; "
                  f"server write->client stamp p50 {pct(errs['receive'], 50) * 1e3:.2f} "
                  f"p99 {pct(errs['receive'], 99) * 1e3:.2f}]  "
                  f"(n={len(errs['ttft'])}, client CPU {res['cpu'] / res['wall'] * 100:3.0f}% of a core)")
            if p99 < 1.0:
                best = users
        print(f"\nlargest concurrency per worker core with TTFT error p99 < 1 ms: {best or 'none of the sweep'}"
              f"  (load average now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
