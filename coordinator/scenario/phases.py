"""Load phases a scenario declares: warm-up, steady, ramp, concurrency/rate ladder, soak.

Each Locust phase is closed (``users``: concurrent virtual users) or open (``rate``: requests
per second on an arrival schedule) and ends after ``duration`` and/or ``requests`` —
whichever comes first. Phases that run outside Locust (a Docker target's cold start) join
the union from their own module.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from loadgen.declaration import Spec
from loadgen.replay import ReplayCommand
from loadgen.spec import ArrivalSpec, WorkloadSpec

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|min|m|h)?\s*$")


def parse_duration(value: Any) -> Any:
    """``90``, ``"90s"``, ``"1.5m"``, ``"2h"``, ``"250ms"`` -> seconds; anything else is left to fail."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration; write seconds or e.g. '30s', '5m', '2h'")
        return float(match.group(1)) * _UNITS[match.group(2) or "s"]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0, description="seconds, or '30s'/'5m'/'2h'")]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


def _check_arrival(open_loop: bool, arrival: ArrivalSpec | None) -> None:
    """Closed phases pace themselves; open phases need an arrival process other than ``closed``."""
    if arrival is None:
        return
    if open_loop and arrival.kind == "closed":
        raise ValueError("arrival.kind: an open phase (rate) needs constant, poisson or gamma")
    if not open_loop and arrival.kind != "closed":
        raise ValueError("arrival applies to open phases (rate); remove it or give rate instead of users")


class PhaseSpec(Spec):
    """Fields every kind of phase has; ``kind`` (a ``Literal``) is each subclass's own.

    Kinds outside this module (a Docker target's cold start) subclass it in their own feature
    and join the scenario's ``phases`` union through ``coordinator.registry``."""

    kind: str
    name: Name

    def check_workloads(self, workloads: list[WorkloadSpec]) -> None:
        """Raise ValueError when the phase cannot run with the scenario's ``workloads`` (most can)."""


class _Bounded(PhaseSpec):
    """A phase ends after ``duration`` or ``requests`` completed requests, whichever is first."""

    duration: Duration | None = None
    requests: int | None = Field(default=None, ge=1, description="end after this many requests completed")
    think_time: float = Field(default=0.0, ge=0, description="closed: seconds each user waits between requests")
    max_concurrency: int = Field(default=1024, ge=1, description="open: most requests in flight (all workers)")
    arrival: ArrivalSpec | None = Field(default=None, description="open: arrival process (default poisson)")

    @model_validator(mode="after")
    def _bounded(self) -> _Bounded:
        if self.duration is None and self.requests is None:
            raise ValueError("give duration and/or requests so the phase ends")
        return self


class _Load(_Bounded):
    users: int | None = Field(default=None, ge=1, description="closed loop: concurrent virtual users")
    rate: float | None = Field(default=None, gt=0, description="open loop: requests per second")

    @model_validator(mode="after")
    def _one_mode(self) -> _Load:
        if (self.users is None) == (self.rate is None):
            raise ValueError("give exactly one of users (closed loop) or rate (open loop)")
        _check_arrival(self.rate is not None, self.arrival)
        return self


class SteadyPhase(_Load):
    """Constant load, measured."""

    kind: Literal["steady"] = "steady"


class WarmupPhase(_Load):
    """Constant load whose records are kept but left out of the run's totals."""

    kind: Literal["warmup"]


class SoakPhase(_Load):
    """Constant load for a long time; the report shows its drift over time."""

    kind: Literal["soak"]
    duration: Duration  # a soak is defined by its length


class RampPhase(_Bounded):
    """Load rising linearly from ``from_users``/``from_rate`` to ``users``/``rate`` over ``duration``."""

    kind: Literal["ramp"]
    duration: Duration
    users: int | None = Field(default=None, ge=1)
    from_users: int = Field(default=1, ge=1)
    rate: float | None = Field(default=None, gt=0)
    from_rate: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _one_mode(self) -> RampPhase:
        if (self.users is None) == (self.rate is None):
            raise ValueError("give exactly one of users (closed loop) or rate (open loop)")
        if self.users is not None and self.from_users > self.users:
            raise ValueError("from_users must be <= users")
        if self.rate is not None and self.from_rate > self.rate:
            raise ValueError("from_rate must be <= rate")
        _check_arrival(self.rate is not None, self.arrival)
        return self


class LadderPhase(PhaseSpec):
    """A concurrency ladder (``users: [1, 2, 4]``) or rate ladder (``rates: [1, 5, 10]``): one step each."""

    kind: Literal["ladder"]
    users: list[Annotated[int, Field(ge=1)]] | None = Field(default=None, min_length=1)
    rates: list[Annotated[float, Field(gt=0)]] | None = Field(default=None, min_length=1)
    step_duration: Duration | None = None
    step_requests: int | None = Field(default=None, ge=1)
    think_time: float = Field(default=0.0, ge=0)
    max_concurrency: int = Field(default=1024, ge=1)
    arrival: ArrivalSpec | None = None

    @model_validator(mode="after")
    def _valid(self) -> LadderPhase:
        if (self.users is None) == (self.rates is None):
            raise ValueError("give exactly one of users (concurrency ladder) or rates (rate ladder)")
        if self.step_duration is None and self.step_requests is None:
            raise ValueError("give step_duration and/or step_requests so each step ends")
        _check_arrival(self.rates is not None, self.arrival)
        return self


def default_kind(value: Any) -> Any:
    """A phase without ``kind`` is a steady phase."""
    if isinstance(value, dict) and "kind" not in value:
        return {**value, "kind": "steady"}
    return value


class SweepPhase(PhaseSpec):
    """Raise the load step by step to find the knee and the capacity under the SLO.

    ``users`` (closed loop) or ``rates`` (open loop): the levels as a list, or ``auto``: from
    ``start``, each level ``factor`` times the last, until throughput stops growing with the load
    (past the knee) and, when the scenario has SLOs, the SLO attainment falls below
    ``slo_target``; then ``bisect`` more levels between the last two of each, to place the knee
    and the capacity more exactly (``docs/sweeps.md`` defines both).
    """

    kind: Literal["sweep"]
    users: list[Annotated[int, Field(ge=1)]] | Literal["auto"] | None = Field(
        default=None, description="concurrency levels, or auto"
    )
    rates: list[Annotated[float, Field(gt=0)]] | Literal["auto"] | None = Field(
        default=None, description="request rates, or auto"
    )
    start: float = Field(default=1.0, gt=0, description="auto: the first level")
    factor: float = Field(default=2.0, gt=1, le=10, description="auto: each level this many times the last")
    max_level: float = Field(default=1024.0, gt=0, description="auto: never beyond this level")
    step_duration: Duration | None = None
    step_requests: int | None = Field(default=None, ge=1)
    knee_gain: float = Field(
        default=0.5, gt=0, lt=1, description="elasticity of throughput to load below which the knee is passed"
    )
    bisect: int = Field(
        default=3, ge=0, le=10, description="levels tried between the last two, for the knee and the capacity"
    )
    slo_target: float | None = Field(
        default=None, gt=0, le=1, description="SLO attainment the capacity must keep (default: slo.percentile / 100)"
    )
    think_time: float = Field(default=0.0, ge=0)
    max_concurrency: int = Field(default=1024, ge=1)
    arrival: ArrivalSpec | None = None

    @model_validator(mode="after")
    def _valid(self) -> SweepPhase:
        if (self.users is None) == (self.rates is None):
            raise ValueError("give exactly one of users (concurrency sweep) or rates (rate sweep)")
        if self.step_duration is None and self.step_requests is None:
            raise ValueError("give step_duration and/or step_requests so each step ends")
        _check_arrival(self.rates is not None, self.arrival)
        levels = self.users if self.users is not None else self.rates
        if isinstance(levels, list) and levels != sorted(set(levels)):
            raise ValueError("levels must rise, each once")
        return self

    @property
    def open_loop(self) -> bool:
        return self.rates is not None

    @property
    def auto(self) -> bool:
        return self.users == "auto" or self.rates == "auto"


TraceSeconds = Annotated[
    float, BeforeValidator(parse_duration), Field(ge=0, description="seconds on the trace's clock, or '30s'/'5m'")
]


class ReplayPhase(PhaseSpec):
    """A trace sent on its own clock: each row at its timestamp (``speed`` times as fast), open loop.

    The window starts ``start`` trace seconds after the first row and lasts ``duration`` (default:
    to the last row); ``loop`` plays it that many times, each pass ``duration`` long. The phase
    lasts as long as its schedule (plus a second for the last sends); requests still in flight
    then finish in the next phase's time but keep this phase's name.
    """

    kind: Literal["replay"]
    workload: Name | None = Field(default=None, description="the workload with a trace prompt (default: the only one)")
    speed: float = Field(default=1.0, gt=0, le=1000, description="2: twice as fast as the trace")
    start: TraceSeconds = 0.0
    duration: Duration | None = Field(default=None, description="trace seconds of the window (default: to the end)")
    loop: int = Field(default=1, ge=1, strict=True, description="play the window this many times")
    max_concurrency: int = Field(default=1024, ge=1, description="most requests in flight (all workers)")

    @model_validator(mode="after")
    def _loop_has_a_period(self) -> ReplayPhase:
        if self.loop > 1 and self.duration is None:
            raise ValueError("loop needs duration: each pass plays the window's duration of trace time")
        return self

    def trace_workload(self, workloads: list[WorkloadSpec]) -> WorkloadSpec:
        """The workload whose trace this phase replays; ValueError naming the fix when there is none."""
        traces = [w for w in workloads if w.prompt.kind == "trace"]
        if self.workload is not None:
            named = next((w for w in workloads if w.name == self.workload), None)
            if named is None:
                raise ValueError(f"phase {self.name!r}: workload {self.workload!r} is not in workloads")
            if named.prompt.kind != "trace":
                raise ValueError(f"phase {self.name!r}: workload {self.workload!r} needs prompt kind trace to replay")
            return named
        if len(traces) != 1:
            found = ", ".join(w.name for w in traces) or "none"
            raise ValueError(
                f"phase {self.name!r}: a replay needs one workload with prompt kind trace (found {found}); "
                "name it with workload"
            )
        return traces[0]

    def check_workloads(self, workloads: list[WorkloadSpec]) -> None:
        self.trace_workload(workloads)

    def replay_command(self, workloads: list[WorkloadSpec]) -> ReplayCommand:
        """What the workers are told to replay (the master adds the origin)."""
        return ReplayCommand(
            workload=self.trace_workload(workloads).name,
            speed=self.speed,
            start=self.start,
            duration=self.duration,
            loop=self.loop,
        )
