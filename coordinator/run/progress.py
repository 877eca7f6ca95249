"""The live progress display: what the run is doing, computed from the collector's records.

Figures are over a sliding window of completed requests (default 10 s), so they follow the
load as phases change; totals cover the whole run. Time left counts down the phase's planned
duration and, where every later phase has one too, the run's. Shown with rich when stdout is
a terminal; otherwise one plain line per phase start and end (logs and CI stay readable).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.table import Table

from coordinator.console import fmt_duration
from coordinator.run.events import StepProgress
from loadgen import metrics
from loadgen.records import RequestRecord
from loadgen.samples import WorkerSample


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One refresh of the display (also what tests check)."""

    phase: str
    elapsed_s: float
    phase_left_s: float | None  # None: the phase ends on a count or a condition, not a clock
    run_left_s: float | None  # None: some phase's length is not known beforehand
    users: int
    target_rate: float | None
    achieved_rate: float
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    tpot_p50_ms: float | None
    tpot_p99_ms: float | None
    output_tokens_per_s: float
    requests: int
    errors: int
    retries: int


class ProgressModel:
    """Rolling window and totals, fed by the collector thread, read by the display (locked).

    It holds a few numbers per request of the last ``window_s`` only: requests that ended
    before that, as of the newest one added, leave the window when the next ones come, so a
    run of hours without a live display (``--no-live`` reads it only at phase ends) stays small.
    """

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._window: deque[tuple[float, float | None, float | None, int]] = deque()  # end, ttft, tpot, tokens
        self._newest = float("-inf")  # the latest end added
        self.requests = 0
        self.errors = 0
        self.retries = 0
        self.phase = "starting"
        self.phase_started = time.monotonic()
        self.phase_duration_s: float | None = None
        self.later_s: float | None = None
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """Requests in the sliding window (the model keeps nothing else per request)."""
        with self._lock:
            return len(self._window)

    def add(self, records: list[RequestRecord]) -> None:
        with self._lock:
            self._add(records)

    def _add(self, records: list[RequestRecord]) -> None:
        for rec in records:
            self.requests += 1
            self.retries += rec.retries
            self._newest = max(self._newest, rec.end)
            if not rec.ok:
                self.errors += 1
                self._window.append((rec.end, None, None, 0))
                continue
            final = rec.final
            self._window.append((rec.end, metrics.ttft(final), metrics.tpot(final), metrics.output_tokens(rec)))
        self._drop_before(self._newest - self.window_s)

    def _drop_before(self, cutoff: float) -> None:
        while self._window and self._window[0][0] < cutoff:
            self._window.popleft()

    def set_phase(
        self, name: str, started: float, duration_s: float | None = None, later_s: float | None = 0.0
    ) -> None:
        """``name`` began at ``started`` (monotonic) for ``duration_s``; ``later_s``: the planned
        length of the phases after it (None when one of them has none)."""
        self.phase = name
        self.phase_started = started
        self.phase_duration_s = duration_s
        self.later_s = later_s

    def snapshot(self, samples: dict[str, WorkerSample], now: float | None = None) -> Snapshot:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._drop_before(now - self.window_s)
            rows = [r for r in self._window if r[0] >= self.phase_started]  # this phase's requests only
        span = min(self.window_s, max(now - self.phase_started, 1e-3))
        ttfts = np.array([r[1] for r in rows if r[1] is not None], dtype=float) * 1000
        tpots = np.array([r[2] for r in rows if r[2] is not None], dtype=float) * 1000
        users = sum(s.users for s in samples.values())
        rates = [s.target_rate for s in samples.values() if s.target_rate]
        elapsed = now - self.phase_started
        phase_left = None if self.phase_duration_s is None else max(0.0, self.phase_duration_s - elapsed)
        return Snapshot(
            phase=self.phase,
            elapsed_s=elapsed,
            phase_left_s=phase_left,
            run_left_s=None if phase_left is None or self.later_s is None else phase_left + self.later_s,
            users=users,
            target_rate=float(sum(rates)) if rates else None,
            achieved_rate=len(rows) / span,
            ttft_p50_ms=_pct(ttfts, 50),
            ttft_p99_ms=_pct(ttfts, 99),
            tpot_p50_ms=_pct(tpots, 50),
            tpot_p99_ms=_pct(tpots, 99),
            output_tokens_per_s=sum(r[3] for r in rows) / span,
            requests=self.requests,
            errors=self.errors,
            retries=self.retries,
        )


def _pct(values: np.ndarray, p: float) -> float | None:
    return float(np.percentile(values, p)) if values.size else None


def time_left(snap: Snapshot) -> str:
    """The phase's time left, and the run's when it differs (``-`` when the phase has no clock)."""
    if snap.phase_left_s is None:
        return "-"
    phase = fmt_duration(snap.phase_left_s)
    if snap.run_left_s is None or snap.run_left_s - snap.phase_left_s < 0.5:
        return phase
    return f"{phase} (run {fmt_duration(snap.run_left_s)})"


def fmt_ms(value: float | None) -> str:
    """A figure for a person: one decimal, thousands separated; ``-`` when there is none."""
    return "-" if value is None else f"{value:,.1f}"


def render(snap: Snapshot, title: str) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    for col in (
        "phase",
        "time",
        "left",
        "users",
        "req/s",
        "TTFT p50/p99 ms",
        "TPOT p50/p99 ms",
        "tok/s",
        "requests",
        "errors",
        "retries",
    ):
        table.add_column(col, justify="right" if col != "phase" else "left")
    rate = f"{snap.achieved_rate:,.1f}" + (f" / {snap.target_rate:,.1f}" if snap.target_rate else "")
    table.add_row(
        snap.phase,
        fmt_duration(snap.elapsed_s),
        time_left(snap),
        str(snap.users),
        rate,
        f"{fmt_ms(snap.ttft_p50_ms)} / {fmt_ms(snap.ttft_p99_ms)}",
        f"{fmt_ms(snap.tpot_p50_ms)} / {fmt_ms(snap.tpot_p99_ms)}",
        f"{snap.output_tokens_per_s:,.0f}",
        f"{snap.requests:,}",
        f"[red]{snap.errors:,}[/red]" if snap.errors else "0",
        f"{snap.retries:,}",
    )
    return table


class ProgressDisplay:
    """Live table when interactive; plain lines otherwise. ``update`` is cheap to call often."""

    def __init__(self, title: str, console: Console | None = None, live: bool | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.title = title
        self.model = ProgressModel()
        self.interactive = self.console.is_terminal if live is None else live
        self._live: Live | None = None
        self._samples: dict[str, WorkerSample] = {}

    def __enter__(self) -> ProgressDisplay:
        if self.interactive:
            self._live = Live(console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(render(self.model.snapshot(self._samples), self.title))
            self._live.__exit__(None, None, None)
            self._live = None

    def update(self, samples: dict[str, WorkerSample]) -> None:
        self._samples = samples
        if self._live is not None:
            self._live.update(render(self.model.snapshot(samples), self.title))

    def phase_started(
        self, name: str, started: float, duration_s: float | None = None, later_s: float | None = 0.0
    ) -> None:
        self.model.set_phase(name, started, duration_s, later_s)
        if not self.interactive:
            left = time_left(self.model.snapshot(self._samples, now=started))
            self.console.print(f"phase {name} started" + ("" if left == "-" else f": {left} left"))

    def phase_ended(self, name: str) -> None:
        if not self.interactive:
            s = self.model.snapshot(self._samples)
            self.console.print(
                f"phase {name} ended: {s.requests} requests so far, {s.errors} errors, "
                f"TTFT p50 {fmt_ms(s.ttft_p50_ms)} ms, {s.achieved_rate:.1f} req/s"
            )

    def message(self, text: str) -> None:
        self.console.print(text)

    def step_progress(self, event: StepProgress) -> None:
        """A line for each part of a step's own long work, with the time the rest would take."""
        about = "at most" if event.at_most else "about"
        left = (
            "" if event.left_s is None or event.done >= event.total else f"; {about} {fmt_duration(event.left_s)} left"
        )
        self.message(f"{event.message}{left}")
