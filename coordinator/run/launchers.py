"""Where a run's Locust workers come from: local processes, containers, machines elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class MasterAddress:
    host: str  # the address workers connect to
    port: int


class WorkerLauncher(Protocol):
    def start(self, count: int, master: MasterAddress, env: dict[str, str], run_dir: Path) -> None: ...
    def exited(self) -> list[tuple[str, int | None]]:
        """(label, exit code) of each worker it started that has exited since start (all so far)."""

    def stop(self, timeout: float) -> None:
        """Make sure every worker it started is gone (after the master's quit they exit by themselves)."""
