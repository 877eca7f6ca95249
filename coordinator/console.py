"""Long work as a person sees it on the console: a duration read at a glance, and a file being read
shown with the time its rest will take.

:class:`ReadProgress` is what ``finishline baseline import`` and ``finishline compare`` hand the
importers (:mod:`coordinator.baselines.importers.document` calls it with the bytes read so far):
on a terminal a bar (rich's, with bytes, speed and time left), otherwise a line at each quarter,
so that a CI log shows the same. Files under :data:`SHOWN_FROM` read in well under a second and
show nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

SHOWN_FROM = 16 * 1024 * 1024  # bytes: a smaller file parses in a fraction of a second (measured: 26 MB in 0.5 s)


def fmt_duration(seconds: float) -> str:
    """``42s``, ``3:05``, ``1:02:09``: a time a person reads at a glance."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ReadProgress:
    """Files being read, on stderr: ``progress(path, done, size)`` after each chunk.

    Use as a context manager around the reading (the bar is closed on leaving it). ``live``:
    force the bar (True) or the lines (False); by default the bar on a terminal only.
    """

    def __init__(self, console: Console | None = None, live: bool | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.interactive = self.console.is_terminal if live is None else live
        self._bar: Progress | None = None
        self._tasks: dict[Path, TaskID] = {}
        self._started: dict[Path, float] = {}
        self._quarter: dict[Path, int] = {}
        self._done: dict[Path, int] = {}

    def __enter__(self) -> ReadProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __call__(self, path: Path, done: int, size: int) -> None:
        if size < SHOWN_FROM:
            return
        now = time.monotonic()
        if done <= self._done.get(path, 0):  # the same file read once more (both sides of a comparison)
            self._started.pop(path, None)
            self._quarter.pop(path, None)
            self._tasks.pop(path, None)
        self._done[path] = done
        started = self._started.setdefault(path, now)
        if self.interactive:
            self._advance_bar(path, done, size)
            return
        quarter = min(4, 4 * done // size)
        if quarter <= self._quarter.get(path, 0):
            return
        self._quarter[path] = quarter
        elapsed = now - started
        if quarter == 4:
            self._line(f"read {path} ({decimal(size)}) in {fmt_duration(elapsed)}")
            return
        left = elapsed * (size - done) / done
        self._line(f"reading {path}: {25 * quarter}% of {decimal(size)}, about {fmt_duration(left)} left")

    def _line(self, text: str) -> None:
        """One whole line, as written (a log is read by tools: no wrapping, no markup)."""
        self.console.print(text, soft_wrap=True, markup=False, highlight=False)

    def _advance_bar(self, path: Path, done: int, size: int) -> None:
        if self._bar is None:
            self._bar = Progress(
                TextColumn("reading {task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._bar.start()
        if path not in self._tasks:
            self._tasks[path] = self._bar.add_task(path.name, total=size)
        self._bar.update(self._tasks[path], completed=done)
