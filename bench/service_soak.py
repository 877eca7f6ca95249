"""Memory over a long run through the service: does anything grow, and does the run judge itself stable?

    python bench/service_soak.py [--minutes 60] [--rate 200] [--every 60] [--warmup SECONDS]

Starts ``finishline serve`` (``python -m coordinator.cli serve``) on a free loopback port, with
a temporary runs directory, its own private redis-server and a token in ``FINISHLINE_TOKEN``
(no allow-list given: only the built-in simulator may be a target). It submits, over HTTP
(``POST /runs``), the soak scenario of ``bench/memory_soak.py``: the simulator, one open-loop
Poisson phase of kind ``soak`` at ``--rate`` requests/s for ``--minutes``, 2 workers, and a
``soak:`` section (one-minute windows, ``warmup_s`` = ``--warmup``; docs/soak.md). Every
``--every`` seconds it samples the RSS (psutil) of the service, the service's redis-server
(``svc-redis``), the run's ``finishline run`` process (``coordinator``), the Locust master,
each worker, the run's redis-server (``run-redis``) and the simulator, plus the run's Redis
``used_memory``, its records stream's length and the records collected so far.

When the run has ended it fetches the summary (``GET /runs/{id}/summary``) and prints the
samples, each process's growth (MB, and bytes per record collected) from the first sample
after ``--warmup`` seconds to the last sample of the load, and the soak verdict with each
series' trend (the drifting ones named). The aim: every process flat after the warm-up, Redis
flat, the verdict stable. Figures: /work/notes/service-soak.md (the lead's notes) and the issue's
closing note. Everything it started is stopped at the end, and on Ctrl-C (the run is cancelled
through the API first, so it ends ``partial`` and leaves nothing behind).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import redis
from memory_soak import (
    MB,
    ROOT,
    Sample,
    label_of,
    labels_of,
    redis_figures,
    redis_port,
    report,
    row,
    scenario_yaml,
    soak_arguments,
)

sys.path.insert(0, str(ROOT))
from coordinator.results.soak import SoakVerdict

TOKEN = "service-soak-bench-token"
ENDED = {"complete", "partial", "recovered", "failed", "cancelled"}


class Api:
    """The service's HTTP API with the bearer token (stdlib urllib: a bench needs no client library)."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: bytes | None = None) -> Any:
        request = urllib.request.Request(self.base + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {TOKEN}")
        if body is not None:
            request.add_header("Content-Type", "application/yaml")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/health", timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Tree:
    """The service's process tree, labelled: the service, its Redis, the run and what the run started."""

    def __init__(self, service: psutil.Process) -> None:
        self.service = service
        self.workers: dict[int, str] = {}
        self.seen: dict[int, psutil.Process] = {}  # everything ever sampled: stopped at the end
        self.run_redis: redis.Redis | None = None

    def label(self, proc: psutil.Process, run_pid: int | None) -> str | None:
        try:
            cmd = " ".join(proc.cmdline())
            parent = proc.ppid()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        if (run_pid is not None and proc.pid == run_pid) or "coordinator.cli run" in cmd:
            return "coordinator"
        found = label_of(proc, self.workers)
        if found == "redis-server":
            return "svc-redis" if parent == self.service.pid else "run-redis"
        return found

    def sample(self, started: float, run_pid: int | None) -> Sample:
        rss = {"service": self.service.memory_info().rss / MB}
        for child in self.service.children(recursive=True):
            label = self.label(child, run_pid)
            if label is None:
                continue
            try:
                rss[label] = child.memory_info().rss / MB
            except psutil.NoSuchProcess:
                continue
            self.seen[child.pid] = child
            if label == "run-redis" and self.run_redis is None and (port := redis_port(child)):
                self.run_redis = redis.Redis(host="127.0.0.1", port=port)
        s = Sample(t=time.monotonic() - started, records=0, xlen=0, rss=rss, load=os.getloadavg()[0])
        if self.run_redis is not None:
            redis_figures(self.run_redis, s)
        return s

    def stop(self) -> None:
        """Stop whatever of the tree is still running (the service stops its own Redis; a run left behind does not)."""
        alive = [p for p in self.seen.values() if p.is_running()]
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        _, still = psutil.wait_procs(alive, timeout=10)
        for proc in still:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()


def print_verdict(summary: dict[str, Any]) -> None:
    if summary.get("soak") is None:
        print("\nsoak verdict: none in the summary (the scenario's soak section was not analysed)")
        return
    soak = SoakVerdict.model_validate(summary["soak"])
    print(f"\nsoak verdict: {soak.verdict} (phase {soak.phase}, {soak.windows} windows of {soak.window_s:g} s)")
    for reason in soak.reasons:
        print(f"  {reason}")
    print(f"  {'series':20} {'start':>12} {'slope %/h':>10} {'interval %/h':>22} {'limit':>7}  drifting")
    for name, trend in soak.trends.items():
        pct = "-" if trend.slope_pct is None else f"{trend.slope_pct:+.1f}"
        span = (
            "-" if trend.low_pct is None or trend.high_pct is None else f"[{trend.low_pct:+.1f}, {trend.high_pct:+.1f}]"
        )
        limit = "-" if trend.limit is None else f"{trend.limit:g}"
        mark = "DRIFTING" if trend.drifting else ""
        print(f"  {name:20} {trend.start:12.4g} {pct:>10} {span:>22} {limit:>7}  {mark}")


def main() -> None:
    args = soak_arguments(__doc__, minutes=60.0, every=60.0, keep="keep the runs directory here")

    with tempfile.TemporaryDirectory(prefix="finishline-service-soak-") as tmp_name:
        runs_dir = args.keep if args.keep is not None else Path(tmp_name)
        runs_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = dict(os.environ, FINISHLINE_TOKEN=TOKEN)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
        log = (runs_dir / "serve.log").open("wb")
        command = [sys.executable, "-m", "coordinator.cli", "serve", "--port", str(port), "--runs-dir", str(runs_dir)]
        # its own session: a Ctrl-C reaches only this script, which cancels the run before it stops the service
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        tree = Tree(psutil.Process(proc.pid))
        api = Api(port)
        run_id: str | None = None
        try:
            deadline = time.monotonic() + 60
            while not api.healthy():
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit("the service did not come up:\n" + (runs_dir / "serve.log").read_text(errors="replace"))
                time.sleep(0.2)
            text = scenario_yaml("service-soak", args.minutes, args.rate, args.preset, args.workers, args.warmup)
            run = api.call("POST", "/runs", text.encode())
            run_id = run["id"]
            started = time.monotonic()
            print(f"service on port {port}, run {run_id} submitted ({run['status']}); runs dir {runs_dir}", flush=True)
            samples: list[Sample] = []
            load_ends = None
            next_at = started
            while True:
                time.sleep(max(0.0, next_at - time.monotonic()))
                run = api.call("GET", f"/runs/{run_id}")
                if run["status"] in ENDED:
                    break
                run_pid = run["process"]["pid"] if run.get("process") else None
                s = tree.sample(started, run_pid)
                samples.append(s)
                if "master" in s.rss and load_ends is None:
                    load_ends = s.t + args.minutes * 60  # the phase starts once the master is up
                print(row(s, labels_of(samples)), flush=True)
                next_at += args.every
            print(f"run {run_id} ended: {run['status']}, exit {run['exit_code']}: {run['headline']}")
            if run["status"] == "failed":
                print((Path(runs_dir) / run_id / "service.log").read_text(errors="replace")[-4000:])
                sys.exit("the run failed")
            summary = api.call("GET", f"/runs/{run_id}/summary")
            output = (Path(runs_dir) / run_id / "service.log").read_text(errors="replace")
            report(samples, args, load_ends, output)
            print_verdict(summary)
        except KeyboardInterrupt:
            print("\ninterrupted: cancelling the run and stopping the service", flush=True)
            if run_id is not None and proc.poll() is None:
                try:
                    api.call("POST", f"/runs/{run_id}/cancel")
                except (urllib.error.URLError, OSError) as e:
                    print(f"cancel failed: {e}")
        finally:
            if run_id is not None:  # wait (bounded) for a cancelled run to end before the service goes
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and proc.poll() is None:
                    try:
                        if api.call("GET", f"/runs/{run_id}")["status"] in ENDED:
                            break
                    except (urllib.error.URLError, OSError):
                        break
                    time.sleep(0.5)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            tree.stop()
            log.close()


if __name__ == "__main__":
    main()
