"""``finishline run --web``: Locust's web UI starts and stops the run's load; the coordinator runs it.

The UI's form comes prefilled with the first measured phase's users and a spawn rate
(:class:`Prefill`). Start with the form as prefilled runs the scenario's plan, every phase in
order (warm-up, closed, open ...) exactly as a headless run does. Start with other figures, or
Edit while a test runs with other figures, runs that load instead: closed-loop users of a phase
of its own, named ``web-<users>users`` (measured; a second one of the same size gets ``-2``),
until the next change or Stop. Stop ends the run at any time: the load drains as at the end of a
headless run and the results are written. The run's outcome:

- the plan ran to its end: it ends as a headless run does;
- Stop (or Ctrl-C) while the plan runs: interrupted (partial, exit 130), as a headless run cut short;
- Stop (or Ctrl-C) while a load of the user's own runs, or before any Start: that load's normal end.

The master answers the UI itself (``coordinator.run.webui``); the events it forwards arrive here
through the cluster. Every ``LIVE_EVERY_S`` the figures of :mod:`coordinator.run.weblive` go to
the master for the UI's LLM tab.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from coordinator.plan.steps import ExternalStep, LocustStep, Plan
from coordinator.run.cluster import LocustCluster
from coordinator.run.context import RunContext
from coordinator.run.events import RecordsCollected, RunStarted
from coordinator.run.preflight import PREFLIGHT
from coordinator.run.serverstate import ServerState
from coordinator.run.targets import metrics_base
from coordinator.run.weblive import LiveFigures
from coordinator.run.webprotocol import UiStart, UiStop
from loadgen.config import PhaseCommand

LIVE_EVERY_S = 2.0
STOPPED_EARLY = "stopped from the web UI before the plan's end"
CUSTOM_PREFIX = "web"


@dataclass(frozen=True, slots=True)
class Prefill:
    """What the UI's form shows before the user changes it."""

    users: int
    spawn_rate: float

    def matches(self, start: UiStart) -> bool:
        return start.users == self.users and abs(start.spawn_rate - self.spawn_rate) < 1e-9 * max(1.0, self.spawn_rate)


@dataclass(frozen=True, slots=True)
class PlanLoad:
    """The scenario's plan, phase after phase."""


@dataclass(frozen=True, slots=True)
class CustomLoad:
    """A load the user set in the form: closed-loop ``users``, spawned at ``spawn_rate``."""

    users: int
    spawn_rate: float


@dataclass(frozen=True, slots=True)
class StopLoad:
    """Stop pressed: the run ends."""


Load = PlanLoad | CustomLoad


def next_load(current: Load | None, start: UiStart, prefill: Prefill) -> Load | None:
    """What a Start (or Edit) means: the plan when nothing runs yet and the form is as prefilled, else
    the form's load; None when it changes nothing (the same figures as what runs)."""
    custom = CustomLoad(users=start.users, spawn_rate=start.spawn_rate)
    if current is None:
        return PlanLoad() if prefill.matches(start) else custom
    if isinstance(current, PlanLoad):
        return None if prefill.matches(start) else custom
    return None if custom == current else custom


def prefill_of(plan: Plan) -> Prefill:
    """The first measured phase's users (what a user starting the test wants measured) and its spawn
    rate; one user at one a second for a plan that runs no Locust step of its own (a sweep)."""
    first = web_template(plan)
    return (
        Prefill(users=1, spawn_rate=1.0) if first is None else Prefill(users=first.users, spawn_rate=first.spawn_rate)
    )


def web_template(plan: Plan) -> LocustStep | None:
    """The first measured Locust step, else the first one (only warm-ups); None without any."""
    steps = plan.locust_steps()
    return next((s for s in steps if s.measured), steps[0] if steps else None)


def custom_step(load: CustomLoad, template: LocustStep | None, workers: int, taken: set[str]) -> LocustStep:
    """The phase of a load set in the form: closed-loop, measured, no end of its own, paced as
    ``template`` (think time, in-flight limit); its name is ``web-<users>users`` unless ``taken``
    has it (then ``-2``, ``-3`` ...)."""
    base = f"{CUSTOM_PREFIX}-{load.users}users"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    command = PhaseCommand(name=name, mode="closed", users=load.users, worker_count=workers)
    if template is not None:
        pace = template.command
        command = command.model_copy(update={"think_time": pace.think_time, "max_concurrency": pace.max_concurrency})
    return LocustStep(
        name=name, phase_kind=CUSTOM_PREFIX, command=command, users=load.users, spawn_rate=load.spawn_rate
    )


class WebRun(Protocol):
    """What the session needs of the run (``coordinator.run.runner.Run``)."""

    ctx: RunContext
    plan: Plan
    cluster: LocustCluster | None

    def run_step(self, step: LocustStep | ExternalStep) -> None: ...

    def watch(self) -> None: ...


class WebSession:
    """Turns the UI's Start and Stop into the run's phases; sends the LLM tab its figures."""

    def __init__(self, run: WebRun) -> None:
        self.run = run
        self.prefill = prefill_of(run.plan)
        self.live = LiveFigures(skip=frozenset({PREFLIGHT}))
        self.current: Load | None = None
        self._next: Load | StopLoad | None = None
        self._sent = 0.0
        self.server: ServerState | None = None  # the server's own figures, when the run scrapes its /metrics
        run.ctx.events.records.add_listener(self._on_records)
        run.ctx.events.run_start.add_listener(self._on_run_start)

    @property
    def scrapes_server(self) -> bool:
        """Whether the run scrapes the server's /metrics (then the UI shows its queue, running and KV cache)."""
        section = self.run.ctx.scenario.metrics
        return section.prometheus and section.scrape_target

    def _on_run_start(self, event: RunStarted) -> None:
        ctx = event.ctx
        if self.scrapes_server and ctx.target_config is not None:
            self.server = ServerState(metrics_base(ctx.target_config.base_url)).start()
            ctx.own("server figures", self.server.stop)

    def _on_records(self, event: RecordsCollected) -> None:
        self.live.add(event.records)

    @property
    def plan_running(self) -> bool:
        return isinstance(self.current, PlanLoad)

    def _take(self) -> None:
        """Read what the UI asked since last time: a Stop wins over any Start."""
        cluster = self.run.cluster
        if cluster is None:
            return
        for event in cluster.ui_events():
            if isinstance(event, UiStop):
                self._next = StopLoad()
            elif not isinstance(self._next, StopLoad):
                base = self._next if self._next is not None else self.current
                load = next_load(base, event, self.prefill)
                if load is not None:
                    self._next = load

    def interrupts_step(self) -> bool:
        """Whether the UI asked for something else than the step that runs (the run's step loop asks)."""
        self._take()
        return self._next is not None

    def drive(self) -> str | None:
        """Wait for Start, then run what the UI asks until the plan ends or Stop; returns why the run
        was cut short (Stop while the plan ran), None when it was not."""
        ctx = self.run.ctx
        while self._next is None and not ctx.stop_requested.is_set():
            self.run.watch()
            time.sleep(0.2)
            self._take()
        while not ctx.stop_requested.is_set():
            wanted, self._next = self._next, None
            if wanted is None or isinstance(wanted, StopLoad):
                return STOPPED_EARLY if wanted is not None and self.plan_running else None
            self.current = wanted
            if isinstance(wanted, PlanLoad):
                if self._plan():
                    return None  # it ended by itself: so does the run
            else:
                taken = {w.name for w in ctx.windows}
                step = custom_step(wanted, web_template(self.run.plan), ctx.scenario.worker_count, taken)
                self.run.run_step(step)
        return None

    def _plan(self) -> bool:
        """The plan's steps in order; True when the last one ended by itself."""
        for step in self.run.plan.steps:
            if self.run.ctx.stop_requested.is_set() or self._next is not None:
                return False
            self.run.run_step(step)
        return self._next is None and not self.run.ctx.stop_requested.is_set()

    def tick(self) -> None:
        """Every ``LIVE_EVERY_S``: the LLM tab's figures to the master."""
        now = time.monotonic()
        cluster = self.run.cluster
        if cluster is None or now - self._sent < LIVE_EVERY_S:
            return
        self._sent = now
        ctx = self.run.ctx
        phase = ctx.current_phase or ""
        started = next((w.start for w in reversed(ctx.windows) if w.name == phase), ctx.started)
        server = self.server.latest if self.server is not None else None
        cluster.live(self.live.view(phase, started, ctx.started, server))
