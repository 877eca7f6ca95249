"""What every service a run owns shares: a child process that is stopped for certain."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self


def spawn(cmd: list[str], log_path: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``cmd`` with stdout and stderr appended to ``log_path`` (discarded without one)."""
    if log_path is None:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    with open(log_path, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_ready(process: subprocess.Popen[bytes], probe: Callable[[], bool], timeout: float, pause: float) -> bool:
    """Poll ``probe`` until it answers True; False once the process has exited or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if probe():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
    return False


def http_ok(url: str) -> bool:
    """``url`` answers 200 right now (loopback services only)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; always reaps the child."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class OwnedService:
    """A started-then-stopped service usable as a context manager (``with Service() as s``)."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
