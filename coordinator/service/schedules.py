"""Schedules: a saved scenario submitted at the times of a cron expression, in a time zone.

What a schedule is (:class:`ScheduleSpec`, what a user writes; :class:`Schedule`, what is kept),
when it fires (:func:`next_fire`, :func:`plan_firings`: pure functions of the clock, which is a
parameter) and where it is kept (:class:`ScheduleStore`, the service's Redis, in
:mod:`coordinator.service.store`'s style). The scheduler that acts on them is
:mod:`coordinator.service.scheduler`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from coordinator.service.store import PREFIX

SCHEDULES_KEY = f"{PREFIX}:schedules"  # a hash name -> Schedule JSON
FIRINGS_KEY = f"{PREFIX}:firings:{{name}}"  # a list of Firing JSON, newest first
KEPT_FIRINGS = 200  # per schedule: enough for a month of nightly soaks and then some
GRACE_S = 15 * 60  # a firing found late by up to this much still runs (once); older ones are missed
SOURCE = "schedule:{name}"  # the ``source`` of the runs a schedule submits


def _check_cron(value: str) -> str:
    if not croniter.is_valid(value):
        raise ValueError(f"{value!r} is not a cron expression (five fields: minute hour day month weekday)")
    return value


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a time zone (an IANA name, e.g. Europe/Paris or UTC)") from None
    return value


class ScheduleSpec(BaseModel):
    """POST /schedules: a scenario to submit at each time of ``cron`` in ``timezone``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="letters, digits and _.-")
    cron: str = Field(description="a cron expression, e.g. '0 2 * * *' (02:00 every day)")
    timezone: str = Field(default="UTC", description="the IANA time zone the cron expression is read in")
    scenario: str = Field(description="the scenario (YAML or JSON text), checked now and at each firing")
    paused: bool = False

    _cron = field_validator("cron")(_check_cron)
    _zone = field_validator("timezone")(_check_zone)


class Schedule(ScheduleSpec):
    """A schedule as kept in the service's Redis (the scenario with it: it is never answered back)."""

    created_at: float = Field(description="wall clock s")
    handled_until: float = Field(description="every firing up to this time (wall clock s) has been handled")


class FiringOutcome(StrEnum):
    STARTED = "started"  # a run was submitted (queued or started)
    SKIPPED = "skipped"  # the schedule's previous run was still queued or running
    MISSED = "missed"  # the service was down at the time (older than the grace window)
    REJECTED = "rejected"  # the scenario no longer passes the service's checks


class Firing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    due: float = Field(description="the firing's time by the cron expression (wall clock s)")
    at: float = Field(description="when the scheduler handled it (wall clock s)")
    outcome: FiringOutcome
    run: str | None = Field(default=None, description="the run it started, or the previous run it was skipped for")
    note: str | None = Field(default=None, description="why it was skipped, missed or rejected")


class ScheduleView(BaseModel):
    """A schedule as the API shows it: no scenario text (it may hold target headers)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    cron: str
    timezone: str
    paused: bool
    created_at: float
    next_fire: float | None = Field(description="the next firing (wall clock s); null while paused")
    next_fire_local: str | None = Field(description="the same, ISO 8601 in the schedule's time zone")
    firings: list[Firing] = Field(description="the latest firings, newest first")


class ScheduleList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedules: list[ScheduleView]


# -- when --------------------------------------------------------------------------------------


def next_fire(cron: str, timezone: str, after: float) -> float:
    """The first time of ``cron``, read in ``timezone``, strictly after ``after`` (wall clock s).
    The expression is stepped in local time, so '0 9 * * *' is 09:00 there in summer and winter."""
    start = datetime.fromtimestamp(after, ZoneInfo(timezone))
    return float(croniter(cron, start).get_next(datetime).timestamp())


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with the firings due between a schedule's ``handled_until`` and now."""

    run: float | None  # the one firing to submit now, if any
    missed: tuple[float, ...]  # firings recorded as missed: the first and the last of them (at most two)
    missed_count: int  # a lower bound when not ``exact``
    handled_until: float  # the schedule's new mark
    exact: bool = True


MAX_STEPS = 10_000  # firings stepped through one by one before the last one is found from now


def plan_firings(cron: str, timezone: str, handled_until: float, now: float, grace_s: float = GRACE_S) -> Plan:
    """The missed-firing policy, like a CronJob's starting deadline: of the firings due since
    ``handled_until``, the latest runs (once) if it is no older than ``grace_s``; every other one
    is missed. While the service runs the latest is seconds old and nothing is missed; after it
    was down, the last firing runs if the service is back within the grace window."""
    first = next_fire(cron, timezone, handled_until)
    if first > now:
        return Plan(None, (), 0, handled_until)
    last, count, exact = first, 1, True
    while count < MAX_STEPS:
        following = next_fire(cron, timezone, last)
        if following > now:
            break
        last, count = following, count + 1
    else:  # too many to step through (down a long time): the latest firing at or before now
        zone = ZoneInfo(timezone)
        last = float(croniter(cron, datetime.fromtimestamp(now + 1, zone)).get_prev(datetime).timestamp())
        exact = False
    runs = now - last <= grace_s
    missed_count = count - 1 if runs else count
    missed_last = next_fire_before(cron, timezone, last) if runs else last
    missed = () if missed_count == 0 else tuple(dict.fromkeys((first, missed_last)))
    return Plan(last if runs else None, missed, missed_count, last, exact)


def next_fire_before(cron: str, timezone: str, when: float) -> float:
    """The firing just before ``when``."""
    start = datetime.fromtimestamp(when, ZoneInfo(timezone))
    return float(croniter(cron, start).get_prev(datetime).timestamp())


def local_iso(when: float, timezone: str) -> str:
    return datetime.fromtimestamp(when, ZoneInfo(timezone)).isoformat()


# -- where ------------------------------------------------------------------------------------


class ScheduleStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def put(self, schedule: Schedule) -> None:
        self.client.hset(SCHEDULES_KEY, schedule.name, schedule.model_dump_json())

    def add(self, schedule: Schedule) -> bool:
        """Keep a new schedule; False when the name is taken (nothing is changed)."""
        return bool(self.client.hsetnx(SCHEDULES_KEY, schedule.name, schedule.model_dump_json()))

    def get(self, name: str) -> Schedule | None:
        raw = self.client.hget(SCHEDULES_KEY, name)
        return None if raw is None else Schedule.model_validate_json(raw)

    def all(self) -> list[Schedule]:
        """Every schedule by name (a document no longer readable is skipped, not fatal)."""
        out = []
        raw: dict[bytes, bytes] = self.client.hgetall(SCHEDULES_KEY)  # type: ignore[assignment]
        for value in raw.values():
            try:
                out.append(Schedule.model_validate_json(value))
            except ValidationError:
                continue
        return sorted(out, key=lambda s: s.name)

    def delete(self, name: str) -> None:
        """The schedule and its firings, in one transaction (the runs it started stay)."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(SCHEDULES_KEY, name)
            pipe.delete(FIRINGS_KEY.format(name=name))
            pipe.execute()

    def record(self, schedule: Schedule, firings: list[Firing]) -> None:
        """Keep the schedule's new mark and its firings (oldest of them first), in one transaction."""
        key = FIRINGS_KEY.format(name=schedule.name)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(SCHEDULES_KEY, schedule.name, schedule.model_dump_json())
            for firing in firings:
                pipe.lpush(key, firing.model_dump_json())
            pipe.ltrim(key, 0, KEPT_FIRINGS - 1)
            pipe.execute()

    def firings(self, name: str, limit: int = KEPT_FIRINGS) -> list[Firing]:
        """The latest firings, newest first."""
        raw: list[bytes] = self.client.lrange(FIRINGS_KEY.format(name=name), 0, limit - 1)  # type: ignore[assignment]
        return [Firing.model_validate_json(value) for value in raw]
