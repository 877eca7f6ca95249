"""CPU of a run's fixed start-up: ``finishline run`` of a tiny scenario, CPU seconds per process role.

Run: ``python bench/startup_cpu.py [--repeat 3]`` (about 15 s a run). The scenario is the smallest a
user can write against the built-in simulator (preset ``instant``): one workload, one closed phase
of one user and 5 requests, one worker; so what it costs is the run's fixed cost, not its traffic:
the coordinator (the CLI, the scenario, the collector, the summary and report), the Locust master,
the worker, the simulator and redis-server.

Each process of the run's tree is sampled with psutil every 20 ms and its role told from its command
line; a process's CPU is its last sample (what it spent after that, at most one interval, is missed
there). The total is exact: ``RUSAGE_CHILDREN`` of this process after ``finishline run`` returned,
which holds every process of the tree that was waited for. With ``--importtime`` each Python role is
started once more with ``-X importtime`` to list the modules that cost most to import.

Measured (2 cores shared with other work, load average 1.7-2.0): 7.0-9.1 s in all, of it the
coordinator 3.7-4.5 s (mostly the report's matplotlib figures: ~0.8 s to import it, 0.5-0.75 s a
figure), the Locust master 1.6-1.8 s and the worker 1.4-1.6 s (each ~1 s importing Locust), the
simulator 0.6 s, redis-server 0.02 s. Issue 13 cut the master's imports from 1.59 s to 1.07 s of CPU
(no results package, numpy or docker spec through coordinator.plan.steps) and the coordinator's
grafana_client import; the report's figures and Locust's own imports are what is left.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]

SCENARIO = {
    "name": "startup",
    "target": {"kind": "simulator", "preset": "instant"},
    "workloads": [{"name": "chat", "prompt": {"kind": "synthetic", "tokens": 32}, "output": 8}],
    "phases": [{"name": "tiny", "users": 1, "requests": 5, "duration": "10s"}],
    "workers": 1,
}

ROLES = ("coordinator", "master", "worker", "simulator", "redis", "other")


def role_of(cmdline: list[str], root_pid: int, pid: int) -> str:
    text = " ".join(cmdline)
    if pid == root_pid:
        return "coordinator"
    if "redis-server" in text:
        return "redis"
    if "targets.simulator" in text:
        return "simulator"
    if "coordinator.run.master" in text:
        return "master"
    if "--worker" in text:
        return "worker"
    return "other"


class TreeSampler:
    """The CPU (user + system seconds) of every process under ``root``, by pid, sampled until stopped."""

    def __init__(self, root: psutil.Process, interval: float = 0.02) -> None:
        self.root = root
        self.interval = interval
        self.cpu: dict[int, float] = {}
        self.roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for proc in procs:
                try:
                    times = proc.cpu_times()
                    if self.roles.get(proc.pid, "other") == "other":  # a child seen between fork and exec
                        self.roles[proc.pid] = role_of(proc.cmdline(), self.root.pid, proc.pid)
                except psutil.Error:
                    continue
                self.cpu[proc.pid] = times.user + times.system
            self._stop.wait(self.interval)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(folder: Path, env: dict[str, str]) -> tuple[dict[str, list[float]], float, float]:
    """Per role the CPU of each of its processes, the exact total and the wall time of one run."""
    scenario = dict(SCENARIO, output_dir=str(folder / "runs"))
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    before, t0 = children_cpu(), time.monotonic()
    proc = psutil.Popen(
        [sys.executable, "-m", "coordinator.cli", "run", str(path)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with TreeSampler(proc) as sampler:
        _, err = proc.communicate(timeout=180)
    wall = time.monotonic() - t0
    total = children_cpu() - before
    if proc.returncode != 0:
        sys.exit(f"finishline run failed ({proc.returncode}): {err.decode()[-2000:]}")
    by_role: dict[str, list[float]] = {role: [] for role in ROLES}
    for pid, cpu in sampler.cpu.items():
        by_role[sampler.roles.get(pid, "other")].append(cpu)
    return by_role, total, wall


def import_costs(env: dict[str, str], top: int) -> None:
    """The modules that cost most to import (cumulative, ``-X importtime``) in each Python role's entry point."""
    entries = {
        "coordinator (finishline CLI)": ["-c", "import coordinator.cli"],
        "master": ["-c", "import coordinator.run.master"],
        "worker (the locustfile)": ["-c", "import locust.main, loadgen.locustfile"],
        "simulator": ["-c", "import targets.simulator.__main__"],
    }
    for label, args in entries.items():
        out = subprocess.run(
            [sys.executable, "-X", "importtime", *args], env=env, capture_output=True, text=True, check=False
        )
        rows = []
        for line in out.stderr.splitlines():
            if not line.startswith("import time:") or "cumulative" in line:
                continue
            self_us, cumulative, name = line.split(":", 1)[1].split("|")
            rows.append((int(cumulative), int(self_us), name.rstrip()))
        print(f"\n  {label}: {sum(r[1] for r in rows) / 1e6:.2f} s of imports; most costly (cumulative):")
        for cumulative, _, name in sorted(rows, reverse=True)[:top]:
            print(f"    {cumulative / 1e3:7.1f} ms  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs; the table shows each role's median")
    parser.add_argument("--importtime", action="store_true", help="also list the costliest imports per role")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (other processes share them)")
    print(f"finishline run of a tiny scenario (simulator 'instant', 1 worker, 1 user, 5 requests), {args.repeat} runs")
    runs = []
    with tempfile.TemporaryDirectory(prefix="finishline-startup-") as tmp:
        for i in range(args.repeat):
            folder = Path(tmp) / f"run-{i}"
            folder.mkdir()
            runs.append(one_run(folder, env))
    print(f"\n  {'role':12s} {'CPU s (median of runs)':>24s}   processes")
    for role in ROLES:
        sums = sorted(sum(r[0][role]) for r in runs)
        count = len(runs[0][0][role])
        if count or any(sums):
            print(f"  {role:12s} {sums[len(sums) // 2]:24.2f}   {count}")
    totals = sorted(r[1] for r in runs)
    walls = sorted(r[2] for r in runs)
    print(
        f"  {'total':12s} {totals[len(totals) // 2]:24.2f}   (exact: RUSAGE_CHILDREN; runs {', '.join(f'{t:.2f}' for t in totals)})"
    )
    print(f"  wall time of a run: median {walls[len(walls) // 2]:.1f} s  (load average now {os.getloadavg()[0]:.2f})")
    if args.importtime:
        import_costs(env, args.top)


if __name__ == "__main__":
    main()
