"""Memory over a long run: does anything grow with the records?

    python bench/memory_soak.py [--minutes 10] [--rate 200] [--every 15] [--warmup SECONDS]

Starts a real run (``python -m coordinator.cli run <scenario> --no-live``): the built-in
simulator, one open-loop Poisson phase at ``--rate`` requests/s, 2 workers, a private
redis-server. Every ``--every`` seconds it samples the RSS (psutil) of the coordinator process,
the Locust master, each worker and redis-server (and Redis's own ``used_memory``), the records
stream's length (XLEN) and how many records the run has collected so far (the stream's
``entries-added`` less the collector group's lag). At the end it prints the samples, then for
each process the growth (MB) from the first sample after ``--warmup`` seconds to the last
sample of the load, and the bytes held per record collected in that interval. The aim: Redis
flat (the stream trimmed as the run goes), the coordinator under 100 bytes per record.

What is bounded still fills first: the stream keeps its last 30 s, the collector remembers
the ids of the last 60 to 120 s (``coordinator.results.collector.RecentIds``). So the default
warm-up is 150 s (half the run when that is shorter): growth after it is what the run adds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def scenario_yaml(
    name: str, minutes: float, rate: float, preset: str, workers: int, soak_warmup_s: float | None
) -> str:
    """The soak's scenario: the simulator, one open-loop Poisson phase. With ``soak_warmup_s`` the
    phase is of kind ``soak`` and the run judges drift (docs/soak.md) in one-minute windows."""
    kind = "" if soak_warmup_s is None else "kind: soak, "
    text = f"""\
name: {name}
target: {{kind: simulator, preset: {preset}, trace: false}}
workloads:
  - name: chat
    prompt: {{kind: synthetic, tokens: {{kind: uniform, min: 50, max: 200}}}}
    output: {{kind: uniform, min: 16, max: 48}}
phases:
  - {{name: soak, {kind}rate: {rate}, arrival: {{kind: poisson}}, duration: {minutes * 60:.0f}s}}
workers: {workers}
"""
    if soak_warmup_s is not None:
        text += f"soak: {{window_s: 60, warmup_s: {soak_warmup_s:.0f}}}\n"
    return text


def scenario(tmp: Path, minutes: float, rate: float, preset: str, workers: int) -> Path:
    path = tmp / "soak.yaml"
    path.write_text(
        scenario_yaml("memory-soak", minutes, rate, preset, workers, None) + f"output_dir: {tmp / 'runs'}\n"
    )
    return path


@dataclass
class Sample:
    t: float  # seconds since the run started
    records: int  # collected so far
    xlen: int
    rss: dict[str, float] = field(default_factory=dict)  # process label -> MB
    redis_used_mb: float = 0.0
    load: float = 0.0  # 1-minute load average


def label_of(proc: psutil.Process, workers: dict[int, str]) -> str | None:
    try:
        cmd = " ".join(proc.cmdline())
        name = proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if name == "redis-server" or "redis-server" in cmd:
        return "redis-server"
    if "coordinator.run.master" in cmd:
        return "master"
    if "--worker" in cmd:
        return workers.setdefault(proc.pid, f"worker-{len(workers) + 1}")
    if "simulator" in cmd or "simulate" in cmd:
        return "simulator"
    return None


def redis_port(proc: psutil.Process) -> int | None:
    """The port redis-server listens on (it rewrites its command line, so ask the kernel)."""
    for conn in proc.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN:
            return int(conn.laddr.port)
    return None


def sample(run: psutil.Process, started: float, workers: dict[int, str], client: list[redis.Redis]) -> Sample:
    rss = {"coordinator": run.memory_info().rss / MB}
    for child in run.children(recursive=True):
        label = label_of(child, workers)
        if label is None:
            continue
        try:
            rss[label] = child.memory_info().rss / MB
        except psutil.NoSuchProcess:
            continue
        if label == "redis-server" and not client and (port := redis_port(child)):
            client.append(redis.Redis(host="127.0.0.1", port=port))
    s = Sample(t=time.monotonic() - started, records=0, xlen=0, rss=rss, load=os.getloadavg()[0])
    if client:
        redis_figures(client[0], s)
    return s


def redis_figures(client: redis.Redis, s: Sample) -> None:
    """The run's Redis into ``s``: records collected so far, the stream's length, ``used_memory``."""
    try:
        keys = list(client.scan_iter(match="finishline:*:records"))
        if keys:
            key = keys[0]
            info = client.xinfo_stream(key)
            lag = sum(int(g.get("lag") or 0) for g in client.xinfo_groups(key) if g["name"] == b"collector")
            s.records = int(info["entries-added"]) - lag
            s.xlen = int(info["length"])
        s.redis_used_mb = int(client.info("memory")["used_memory"]) / MB
    except redis.RedisError:
        pass


def soak_arguments(doc: str | None, minutes: float, every: float, keep: str) -> argparse.Namespace:
    """The options of a soak bench (this one and ``service_soak.py``), ``--warmup`` filled in:
    150 s, or half the run when that is shorter."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=minutes)
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s (open loop, Poisson)")
    parser.add_argument("--every", type=float, default=every, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=None, help="growth is measured from the first sample after")
    parser.add_argument("--preset", default="instant", help="simulator preset (gpu-8b saturates at 200/s)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help=keep)
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = min(150.0, args.minutes * 30)
    return args


def main() -> None:
    args = soak_arguments(__doc__, minutes=10.0, every=15.0, keep="keep the scenario and the run directory here")

    with tempfile.TemporaryDirectory(prefix="finishline-soak-") as tmp_name:
        tmp = args.keep if args.keep is not None else Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        path = scenario(tmp, args.minutes, args.rate, args.preset, args.workers)
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        log = (tmp / "run.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "coordinator.cli", "run", str(path), "--no-live"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started = time.monotonic()
        run = psutil.Process(proc.pid)
        workers: dict[int, str] = {}
        client: list[redis.Redis] = []
        samples: list[Sample] = []
        load_ends = None
        next_at = started
        while proc.poll() is None:
            time.sleep(max(0.0, next_at - time.monotonic()))
            if proc.poll() is not None:
                break
            try:
                s = sample(run, started, workers, client)
            except psutil.NoSuchProcess:
                break
            samples.append(s)
            if "master" in s.rss and load_ends is None:
                load_ends = s.t + args.minutes * 60  # the phase starts once the master is up
            print(row(s, labels_of(samples)), flush=True)
            next_at += args.every
        proc.wait()
        log.close()
        output = (tmp / "run.log").read_text(errors="replace")
        if proc.returncode == 4:  # invalid: the client fell behind (a busy machine); memory is still measured
            print(
                "note: the run's self-check says INVALID (exit 4): its latencies are not to be trusted, its memory is"
            )
        elif proc.returncode != 0:
            print(output[-4000:])
            sys.exit(f"the run failed (exit {proc.returncode})")
        report(samples, args, load_ends, output)


def labels_of(samples: list[Sample]) -> list[str]:
    seen: dict[str, None] = {}
    for s in samples:
        for label in s.rss:
            seen.setdefault(label, None)
    order = ["service", "svc-redis", "coordinator", "master", "redis-server", "run-redis", "simulator"]
    return [x for x in order if x in seen] + sorted(x for x in seen if x not in order)


def row(s: Sample, labels: list[str]) -> str:
    cells = [f"{s.t:6.0f}", f"{s.records:9,}", f"{s.xlen:7,}", f"{s.redis_used_mb:8.1f}"]
    cells += [f"{s.rss[x]:9.1f}" if x in s.rss else f"{'-':>9}" for x in labels]
    return " ".join(cells) + f" {s.load:5.2f}"


def report(samples: list[Sample], args: argparse.Namespace, load_ends: float | None, output: str) -> None:
    labels = labels_of(samples)
    print()
    print("    t   records    xlen redis_used " + " ".join(f"{x[:9]:>9}" for x in labels) + "  load")
    for s in samples:
        print(row(s, labels))
    # while the master is up: a sample taken as the run winds down has no workers left to compare
    loaded = [s for s in samples if (load_ends is None or s.t <= load_ends + 1) and "master" in s.rss]
    after = [s for s in loaded if s.t >= args.warmup]
    if len(after) < 2:
        print("too few samples after the warm-up to measure growth")
        return
    first, last = after[0], after[-1]
    records = last.records - first.records
    print(f"\ngrowth from t={first.t:.0f}s to t={last.t:.0f}s ({records:,} records collected in between):")
    for label in [*labels, "redis used_memory"]:
        if label == "redis used_memory":
            a, b = first.redis_used_mb, last.redis_used_mb
        elif label in first.rss and label in last.rss:
            a, b = first.rss[label], last.rss[label]
        else:
            continue
        per = (b - a) * MB / records if records else float("nan")
        print(f"  {label:18} {a:8.1f} -> {b:8.1f} MB   {b - a:+7.1f} MB   {per:+8.1f} bytes/record")
    print(f"  {'stream length':18} {first.xlen:8,} -> {last.xlen:8,} entries")
    loads = [s.load for s in samples]
    print(f"load average (1 min) over the run: min {min(loads):.2f}, max {max(loads):.2f}, cores {os.cpu_count()}")
    print(f"rate asked: {args.rate:g}/s; achieved: {records / max(last.t - first.t, 1e-9):.1f} records/s in between")
    print("run's last lines:\n" + "\n".join(output.strip().splitlines()[-2:]))


if __name__ == "__main__":
    main()
