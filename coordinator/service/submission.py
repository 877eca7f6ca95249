"""Submitting a scenario: validated by the scenario loader, checked against the allow-lists,
then queued. The API's ``POST /runs`` calls :func:`submit_scenario`; the scheduler does too, with
its own ``source``, so every run goes through the same checks and the same queue."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from coordinator.scenario.loader import parse
from coordinator.service.access import AllowList, target_identity
from coordinator.service.models import ServiceRun
from coordinator.service.queue import RunQueue


class Rejected(Exception):
    """A request refused: the HTTP status it is answered with, one line, and the field it is about."""

    def __init__(self, status: int, error: str, field: str | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.field = status, error, field


@dataclass(frozen=True, slots=True)
class Checked:
    """A scenario that passed: as the run will read it (YAML), its name and its target's identity."""

    text: str
    name: str
    target: str


def check_scenario(runs_dir: Path, allow: AllowList, text: str) -> Checked:
    """The checks of :func:`submit_scenario`, keeping nothing (a schedule is checked so when made)."""

    def screen(data: object) -> None:  # before validation: say "not allowed", not what the machine lacks
        refusal = allow.raw_refusal(data)
        if refusal is not None:
            raise Rejected(422 if refusal.field == "matrix" else 403, refusal.message, refusal.field)

    base = allow.data_dir or runs_dir  # relative file names are the data directory's
    scenario, problems, _ = parse(text, "body", base, {"output_dir": str(runs_dir)}, screen)
    if problems or scenario is None:
        first = problems[0] if problems else None
        raise Rejected(422, first.message if first else "not a scenario", (first.field if first else "") or "body")
    refusal = allow.refusal(scenario)
    if refusal is not None:
        raise Rejected(403, refusal.message, refusal.field)
    resolved = yaml.safe_dump(scenario.model_dump(mode="json", exclude_none=True), sort_keys=False)
    return Checked(resolved, scenario.name, target_identity(scenario))


def submit_scenario(queue: RunQueue, allow: AllowList, text: str, source: str = "api") -> ServiceRun:
    """Queue the scenario ``text`` (YAML or JSON); :class:`Rejected` (422 invalid, 403 not allowed)
    before anything is kept. Relative paths in it are relative to the data directory, and its
    output goes to the run's folder whatever it says."""
    checked = check_scenario(queue.runs_dir, allow, text)
    return queue.submit(checked.text, checked.name, checked.target, source=source)
