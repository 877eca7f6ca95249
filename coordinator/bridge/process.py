"""A bridge as a child process, owned by whoever started it (a run, a test, the benchmark)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from coordinator.services.ports import free_port
from coordinator.services.process import OwnedService, http_ok, start_process, stop_process


class BridgeProcess(OwnedService):
    """``finishline bridge`` in a subprocess on a free loopback port."""

    def __init__(
        self,
        run_id: str,
        redis_url: str,
        consumer: str = "bridge-1",
        port: int | None = None,
        extra_args: list[str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.run_id = run_id
        self.redis_url = redis_url
        self.consumer = consumer
        self.port = port or free_port()
        self.extra_args = list(extra_args or [])
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def start(self, timeout: float = 20.0) -> BridgeProcess:
        cmd = [
            sys.executable,
            "-m",
            "coordinator.cli",
            "bridge",
            "--run-id",
            self.run_id,
            "--redis-url",
            self.redis_url,
            "--consumer",
            self.consumer,
            "--port",
            str(self.port),
            *self.extra_args,
        ]
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.process = start_process(
            cmd,
            ready=lambda: http_ok(self.url),
            what=f"the bridge ({self.url})",
            timeout=timeout,
            log_path=self.log_path,
            env=env,
        )
        return self

    def scrape(self) -> str:
        with urllib.request.urlopen(self.url, timeout=5) as resp:
            body: bytes = resp.read()
        return body.decode()

    def kill(self) -> None:
        """SIGKILL: no chance to finish a batch (what a crash looks like)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.process, timeout=timeout)
        self.process = None
