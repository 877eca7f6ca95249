"""How fast the simulator streams, and how late it writes tokens compared with its own model.

Run: ``python bench/simulator_throughput.py [--streams 512] [--seconds 6]``

1. Capacity: the simulator pinned to core 0 (taskset), the ``instant`` preset (0.5 ms steps,
   every stream in the batch), 512 concurrent streaming completions kept busy by a client
   process pinned to core 1 (raw asyncio sockets, so the client is not the limit), each stream
   asking for 128..383 tokens (ignore_eos) back to back on a keep-alive connection. Figure:
   streamed tokens/s as counted by the client (and checked against the trace).
2. Added latency: the ``gpu-8b`` preset with 512 streams (256 in the batch, ~15-20 ms steps).
   Figure: for every token, the time it was written to the socket (trace ``token_times``)
   minus the end of the engine step that produced it (``token_due``), p50/p99/max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
MARK = b'"text":"'  # one per content chunk; with tokens_per_chunk 1, one per token
END = b"\r\n0\r\n\r\n"  # the terminating zero-length chunk of a response


# ---- the client (its own process) ------------------------------------------------------------
class Stream(asyncio.Protocol):
    """One keep-alive connection sending streaming completions back to back."""

    def __init__(self, request: bytes, counter: list[int]) -> None:
        self.request = request
        self.counter = counter  # [tokens, responses]
        self.carry = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP connection's
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.carry + data
        self.counter[0] += buf.count(MARK)
        if buf.endswith(END):
            self.counter[1] += 1
            self.carry = b""
            assert self.transport is not None
            self.transport.write(self.request)
        else:
            self.carry = buf[-16:]


async def client_main(port: int, streams: int, warmup: float, seconds: float, max_tokens: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    counter = [0, 0]
    conns = []
    for i in range(streams):
        # lengths spread over [max_tokens / 2, 3 * max_tokens / 2): streams do not finish in waves
        tokens = max_tokens // 2 + (i * 7919) % max(max_tokens, 1)
        payload = orjson.dumps(
            {"model": "m", "prompt": f"hello world {i}", "max_tokens": tokens, "ignore_eos": True, "stream": True}
        )
        request = (
            b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(payload), payload)
        )
        conns.append(await loop.create_connection(lambda request=request: Stream(request, counter), "127.0.0.1", port))
    await asyncio.sleep(warmup)
    t0, c0, p0 = time.monotonic(), list(counter), time.process_time()
    await asyncio.sleep(seconds)
    t1, c1, p1 = time.monotonic(), list(counter), time.process_time()
    for transport, _ in conns:
        transport.close()
    return {
        "start": t0,
        "end": t1,
        "tokens": c1[0] - c0[0],
        "responses": c1[1] - c0[1],
        "total_tokens": c1[0],
        "client_cpu_share": (p1 - p0) / (t1 - t0),
        "tokens_per_s": (c1[0] - c0[0]) / (t1 - t0),
    }


# ---- the driver ---------------------------------------------------------------------------------
def pin(core: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > core:
        return ["taskset", "-c", str(core)]
    return []


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"simulator exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("simulator did not start")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_case(
    preset: str, overrides: dict[str, object], streams: int, warmup: float, seconds: float, max_tokens: int
) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="simbench-") as tmp:
        cfg = Path(tmp) / "sim.yaml"
        cfg.write_text(yaml.safe_dump(overrides))
        trace = Path(tmp) / "trace.jsonl"
        port = free_port()
        sim = subprocess.Popen(
            [
                *pin(0),
                sys.executable,
                "-m",
                "targets.simulator",
                "--preset",
                preset,
                "--port",
                str(port),
                "--config",
                str(cfg),
                "--trace",
                str(trace),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_ready(port, sim)
            cpu0, wait0, w0 = _cpu_seconds(sim.pid), _run_queue_wait_s(sim.pid), time.monotonic()
            out = subprocess.run(
                [
                    *pin(1),
                    sys.executable,
                    __file__,
                    "--client",
                    "--port",
                    str(port),
                    "--streams",
                    str(streams),
                    "--warmup",
                    str(warmup),
                    "--seconds",
                    str(seconds),
                    "--max-tokens",
                    str(max_tokens),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=warmup + seconds + 120,
            )
            cpu1, wait1, w1 = _cpu_seconds(sim.pid), _run_queue_wait_s(sim.pid), time.monotonic()
            if out.returncode != 0:
                raise SystemExit(f"client failed: {out.stderr[-2000:]}")
            result = json.loads(out.stdout)
        finally:
            sim.terminate()
            sim.wait(timeout=10)
        lags: list[float] = []
        traced = 0
        for line in trace.read_bytes().splitlines():
            rec = orjson.loads(line)
            for t, due in zip(rec["token_times"], rec["token_due"], strict=True):
                if result["start"] <= t <= result["end"]:
                    traced += 1
                    lags.append(t - due)
        if os.environ.get("SIMBENCH_KEEP_TRACE"):
            shutil.copy(trace, os.environ["SIMBENCH_KEEP_TRACE"] + f".{preset}.jsonl")
        lags.sort()
        result["traced_tokens_per_s"] = traced / (result["end"] - result["start"])
        result["sim_cpu_s"] = cpu1 - cpu0
        result["tokens_per_cpu_s"] = result["total_tokens"] / max(cpu1 - cpu0, 1e-9)
        result["cpu_share"] = (cpu1 - cpu0) / (w1 - w0)
        result["starved_share"] = (wait1 - wait0) / (w1 - w0)
        if lags:
            result["lag_p50_ms"] = 1e3 * statistics.median(lags)
            result["lag_p99_ms"] = 1e3 * lags[int(0.99 * (len(lags) - 1))]
            result["lag_max_ms"] = 1e3 * lags[-1]
        return result


def _run_queue_wait_s(pid: int) -> float:
    """Seconds the process was runnable but waiting for a CPU (other load on the core)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--streams", type=int, default=512)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--max-tokens", type=int, default=256)
    args = ap.parse_args()
    if args.client:
        print(json.dumps(asyncio.run(client_main(args.port, args.streams, args.warmup, args.seconds, args.max_tokens))))
        return
    print(
        f"simulator on core 0, client on core 1 ({'taskset' if pin(1) else 'NOT pinned'}),"
        f" {args.streams} concurrent streams, {args.seconds:g} s measured after {args.warmup:g} s"
    )
    cap = run_case(
        "instant", {"max_num_seqs": max(args.streams, 1)}, args.streams, args.warmup, args.seconds, args.max_tokens
    )
    per_core = min(cap["tokens_per_s"] / max(cap["cpu_share"], 1e-9), cap["tokens_per_cpu_s"])
    print(
        f"capacity (instant preset): {cap['tokens_per_s']:,.0f} streamed tokens/s wall clock"
        f" (trace agrees: {cap['traced_tokens_per_s']:,.0f}) using {cap['cpu_share']:.0%} of"
        f" core 0 and waiting {cap['starved_share']:.0%} of the time for it (other load);"
        f" client: {cap['client_cpu_share']:.0%} of core 1"
        f" -> {cap['tokens_per_cpu_s']:,.0f} tokens per simulator CPU-second;"
        f" target >= 20,000/core: {'PASS' if per_core >= 20_000 else 'FAIL'}"
    )
    lat = run_case("gpu-8b", {}, args.streams, args.warmup, args.seconds, args.max_tokens)
    print(
        f"gpu-8b preset: {lat['tokens_per_s']:,.0f} tokens/s (model-bound);"
        f" added latency (socket write - step end): p50 {lat['lag_p50_ms']:.2f} ms,"
        f" p99 {lat['lag_p99_ms']:.2f} ms, max {lat['lag_max_ms']:.2f} ms;"
        f" simulator CPU {lat['cpu_share']:.0%} of a core"
    )


if __name__ == "__main__":
    main()
