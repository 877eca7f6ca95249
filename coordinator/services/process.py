"""Starting a child process and waiting until it is ready: the one way finishline does both.

Every service a run owns (redis-server, prometheus, the bridge, the simulator) and every test
fixture that starts one goes through :func:`start_process`: the child runs in a session of
its own (so a terminal's Ctrl-C reaches only the coordinator, which then stops children in
order), its output goes to a log file, and readiness is polled with tenacity until a probe
answers, the child exits, or the time is up. :func:`wait_until` is the same poll for things
that are not processes (a container's port and health check).
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import tenacity

from loadgen.errors import ServiceError


class NotReady(ServiceError):
    """A process or service did not become ready: it exited, or the time ran out."""


def _tail(log_path: Path | None) -> str:
    """The log's last non-empty line, for a one-line error."""
    if log_path is None or not log_path.exists():
        return ""
    lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    return f": {lines[-1]}" if lines else ""


def wait_until(
    probe: Callable[[], bool],
    *,
    timeout: float,
    interval: float,
    what: str,
    check: Callable[[], None] | None = None,
    between: Callable[[], None] | None = None,
) -> float:
    """Poll ``probe`` every ``interval`` seconds until it answers True; returns ``time.monotonic()`` then.

    ``check`` runs before each poll and raises to stop waiting (the thing died); ``between``
    runs between polls (the cold-start phase sends a request there). After ``timeout`` seconds,
    :class:`NotReady` names ``what``.
    """

    def attempt() -> bool:
        if check is not None:
            check()
        return probe()

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(interval),
        retry=tenacity.retry_if_result(lambda ready: not ready),
        before_sleep=(lambda _state: between()) if between is not None else None,
        reraise=True,
    )
    try:
        retrying(attempt)
    except tenacity.RetryError:
        raise NotReady(f"{what} not ready within {timeout:g} s") from None
    return time.monotonic()


def start_process(
    cmd: list[str],
    *,
    ready: Callable[[], bool],
    what: str,
    timeout: float,
    interval: float = 0.05,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session (output appended to ``log_path``) and wait until ``ready()``.

    Raises :class:`NotReady` (naming ``what`` and the log's last line) when the process exits
    or ``timeout`` passes first; the process is stopped before raising.
    """
    if log_path is None:
        process = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True
        )
    else:
        with open(log_path, "ab") as out:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def alive() -> None:
        if process.poll() is not None:
            raise NotReady(f"{what} exited with code {process.returncode} at start{_tail(log_path)}")

    try:
        wait_until(ready, timeout=timeout, interval=interval, what=what, check=alive)
    except NotReady as exc:
        timed_out = process.poll() is None
        stop_process(process, timeout=5)
        if timed_out:  # an exit already named the log's last line
            raise NotReady(f"{exc}{_tail(log_path)}") from None
        raise
    return process


def http_ok(url: str) -> bool:
    """``url`` answers a 2xx status right now (loopback services only)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(200 <= resp.status < 300)
    except (OSError, ValueError):
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
