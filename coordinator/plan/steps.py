"""From the scenario's phases to the steps the master runs, in order.

A ladder becomes one step per rung; a ramp becomes one step whose users spawn at the
ramp's pace (closed) or whose arrival rate rises (open); a replay becomes one open step that
lasts as long as its trace window takes to send. Phases that run outside Locust
(cold starts) stay as they are and are run by their own runner. The plan is plain JSON
so the master process (a separate, gevent-patched process) can read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from coordinator import registry
from coordinator.scenario.phases import (
    LadderPhase,
    RampPhase,
    ReplayPhase,
    SoakPhase,
    SteadyPhase,
    SweepPhase,
    WarmupPhase,
)
from loadgen.config import PhaseCommand
from loadgen.replay import wall_seconds
from loadgen.spec import ArrivalSpec, TracePrompt
from loadgen.traces import read_trace

if TYPE_CHECKING:  # only named in annotations: the Locust master imports this module for its step
    # models, and the scenario's model would bring the results package and numpy with it
    from coordinator.scenario.models import Scenario

POISSON = ArrivalSpec(kind="poisson")
FAST_SPAWN = 1000.0  # users/s for a step that changes load at once (Locust dispatches in 1 s slices)
REPLAY_TAIL = 1.0  # seconds a replay step lasts past its last send, so a row sent a little late still is


class LocustStep(BaseModel):
    """One phase as the master runs it: announce ``command``, set users, wait for the end."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["locust"] = "locust"
    name: str
    phase_kind: str  # steady, warmup, soak, ramp, ladder
    command: PhaseCommand
    users: int  # Locust users to run (closed: virtual users; open: one dispatcher per worker)
    spawn_rate: float  # users per second while changing
    start_users: int | None = None  # a closed ramp starts here and spawns up to ``users``
    duration: float | None = None
    requests: int | None = None
    measured: bool = True  # warm-up steps are kept but left out of the run's totals


class ExternalStep(BaseModel):
    """A phase run by the coordinator itself, outside Locust (e.g. a Docker cold start)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["external"] = "external"
    name: str
    phase_kind: str
    spec: dict[str, Any]
    measured: bool = True


Step = Annotated[LocustStep | ExternalStep, Field(discriminator="kind")]


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[Step]

    def locust_steps(self) -> list[LocustStep]:
        return [s for s in self.steps if isinstance(s, LocustStep)]

    def drives_locust(self) -> bool:
        """A step outside Locust's plan drives Locust steps of its own (a sweep): the workers must run."""
        return any(isinstance(s, ExternalStep) and registry.phase_kind(s.phase_kind).drives_locust for s in self.steps)

    def unmeasured(self) -> frozenset[str]:
        """Names of the steps left out of the run's totals (warm-ups)."""
        return frozenset(s.name for s in self.steps if not s.measured)

    def planned_time(self, step: LocustStep | ExternalStep) -> tuple[float | None, float | None]:
        """``step``'s planned duration and that of the steps after it (None where one has no
        duration: a cold start, a count of requests, a sweep's levels; a step not of the plan, a
        sweep's level, has no known rest)."""
        duration = step.duration if isinstance(step, LocustStep) else None
        if step not in self.steps:
            return duration, None
        later = [s.duration if isinstance(s, LocustStep) else None for s in self.steps[self.steps.index(step) + 1 :]]
        return duration, None if any(d is None for d in later) else float(sum(d for d in later if d is not None))

    def estimated_seconds(self) -> float | None:
        total = 0.0
        for step in self.locust_steps():
            if step.duration is None:
                return None
            total += step.duration
        return total


# The phases a plan runs in Locust (the others have a runner of their own).
LocustPhase = SteadyPhase | WarmupPhase | SoakPhase | RampPhase | LadderPhase | SweepPhase | ReplayPhase


def _step(
    phase: LocustPhase,
    workers: int,
    *,
    users: int | None,
    rate: float | None,
    arrival: ArrivalSpec | None,
    name: str | None = None,
    start_users: int | None = None,
    spawn_rate: float | None = None,
) -> LocustStep:
    """One step of ``phase`` at ``users`` (closed) or ``rate`` (open); a ladder's rung is named ``name``.

    How the step ends and how it paces itself (think time, in-flight limit) are the phase's own."""
    assert not isinstance(phase, ReplayPhase), "a replay's step is _replay_step's"
    if isinstance(phase, LadderPhase | SweepPhase):
        duration, requests = phase.step_duration, phase.step_requests
    else:
        duration, requests = phase.duration, phase.requests
    name = name or phase.name
    if rate is not None:
        command = PhaseCommand(
            name=name,
            mode="open",
            rate=rate,
            arrival=arrival or POISSON,
            worker_count=workers,
            max_concurrency=phase.max_concurrency,
            duration=duration,
        )
        locust_users = workers  # one dispatcher per worker
    else:
        assert users is not None
        command = PhaseCommand(
            name=name,
            mode="closed",
            users=users,
            worker_count=workers,
            think_time=phase.think_time,
            max_concurrency=phase.max_concurrency,
            duration=duration,
        )
        locust_users = users
    return LocustStep(
        name=name,
        phase_kind=phase.kind,
        command=command,
        users=locust_users,
        spawn_rate=spawn_rate or FAST_SPAWN,
        start_users=start_users,
        duration=duration,
        requests=requests,
        measured=phase.kind != "warmup",
    )


def _ramp_step(phase: RampPhase, workers: int) -> LocustStep:
    """Closed: users spawn from ``from_users`` at the ramp's pace; open: the arrival rate rises to ``rate``."""
    if phase.users is not None:
        spawn_rate = max((phase.users - phase.from_users) / phase.duration, 0.01)
        return _step(
            phase,
            workers,
            users=phase.users,
            rate=None,
            arrival=None,
            start_users=phase.from_users,
            spawn_rate=spawn_rate,
        )
    assert phase.rate is not None
    update = {"ramp_seconds": phase.duration, "ramp_from": phase.from_rate / phase.rate}
    arrival = (phase.arrival or POISSON).model_copy(update=update)
    return _step(phase, workers, users=None, rate=phase.rate, arrival=ArrivalSpec.model_validate(arrival.model_dump()))


def _replay_step(phase: ReplayPhase, scenario: Scenario) -> LocustStep:
    """One open step: the workers send the trace window's rows at their times (``loadgen.replay``);
    it lasts as long as that schedule, from the origin the master names, plus ``REPLAY_TAIL``."""
    workload = phase.trace_workload(scenario.workloads)
    assert isinstance(workload.prompt, TracePrompt)
    index = scenario.workloads.index(workload)
    times = [row.time for row in read_trace(workload.prompt, f"workloads[{index}].prompt.path")]
    replay = phase.replay_command(scenario.workloads)
    duration = wall_seconds(times, replay) + REPLAY_TAIL
    command = PhaseCommand(
        name=phase.name,
        mode="open",
        worker_count=scenario.worker_count,
        max_concurrency=phase.max_concurrency,
        duration=duration,
        replay=replay,
    )
    return LocustStep(
        name=phase.name,
        phase_kind=phase.kind,
        command=command,
        users=scenario.worker_count,  # one dispatcher per worker
        spawn_rate=FAST_SPAWN,
        duration=duration,
    )


def sweep_step(phase: SweepPhase, workers: int, level: float, index: int) -> LocustStep:
    """Level ``index`` (1-based, in the order they run) of a sweep: ``{name}.{index}-u{N}`` or ``-r{R}``."""
    if phase.open_loop:
        return _step(
            phase, workers, users=None, rate=level, arrival=phase.arrival, name=f"{phase.name}.{index}-r{level:g}"
        )
    users = round(level)
    return _step(phase, workers, users=users, rate=None, arrival=None, name=f"{phase.name}.{index}-u{users}")


def build_plan(scenario: Scenario) -> Plan:
    """Every step of the scenario in order."""
    workers = scenario.worker_count
    steps: list[LocustStep | ExternalStep] = []
    for phase in scenario.phases:
        if isinstance(phase, SteadyPhase | WarmupPhase | SoakPhase):
            steps.append(_step(phase, workers, users=phase.users, rate=phase.rate, arrival=phase.arrival))
        elif isinstance(phase, RampPhase):
            steps.append(_ramp_step(phase, workers))
        elif isinstance(phase, ReplayPhase):
            steps.append(_replay_step(phase, scenario))
        elif isinstance(phase, LadderPhase):
            rungs: list[tuple[int | None, float | None]] = (
                [(u, None) for u in phase.users] if phase.users is not None else [(None, r) for r in phase.rates or []]
            )
            for i, (users, rate) in enumerate(rungs, start=1):
                label = f"u{users}" if users is not None else f"r{rate:g}"
                name = f"{phase.name}.{i}-{label}"
                steps.append(_step(phase, workers, users=users, rate=rate, arrival=phase.arrival, name=name))
        elif registry.phase_kind(phase.kind).runner is not None:
            steps.append(ExternalStep(name=phase.name, phase_kind=phase.kind, spec=phase.model_dump(mode="json")))
        else:
            raise TypeError(f"phase kind {phase.kind} has neither a runner nor a Locust expansion")
    return Plan(steps=steps)
