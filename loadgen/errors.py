"""The errors finishline raises on purpose, and how a validation problem is told: one line naming
the field and the fix.

- :class:`FinishlineError` is the base; its message is one line, shown as is.
- :class:`UserError`: bad input (a file, an option, a declaration). The CLI prints it and exits 2;
  nothing was started, or what was started is torn down and what was measured is kept.
- :class:`ServiceError`: something finishline started or relies on failed (redis-server, the
  Locust processes, the simulator, a container, the Docker engine), not the user's input.

:func:`field_problems` is the one place a pydantic ``ValidationError`` becomes ``field: message``
lines; the scenario loader adds the file's line numbers to the same problems.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


class FinishlineError(Exception):
    """Base of the errors finishline raises on purpose; the message is one line."""


class UserError(FinishlineError):
    """Bad input (file, option, declaration). Its message is one line naming the field and the fix."""


class ServiceError(FinishlineError):
    """A service or process finishline started or relies on failed; the message says which and why."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One problem of a validated value: where (pydantic's location) and what, in words."""

    loc: tuple[int | str, ...]
    kind: str  # pydantic's error type, e.g. "missing", "extra_forbidden"
    message: str

    @property
    def field(self) -> str:
        return field_path(self.loc)


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("workloads", 0, "prompt", "mean")`` -> ``workloads[0].prompt.mean``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _message(err: Any) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key; remove it or check its spelling"
    if kind == "missing":
        return "required; add it"
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        tags = ctx.get("expected_tags")
        expected = f"use one of {tags}" if tags else "see docs/scenario.md"
        return ("needs a kind; " if kind == "union_tag_not_found" else f"unknown kind {ctx.get('tag')!r}; ") + expected
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


def field_problems(exc: ValidationError) -> list[FieldProblem]:
    """Every problem of ``exc`` with a message a user can act on."""
    return [FieldProblem(tuple(err["loc"]), err["type"], _message(err)) for err in exc.errors()]


def describe_validation_error(exc: ValidationError, limit: int = 1) -> str:
    """The first ``limit`` problems of a pydantic error, each as ``field: message``."""
    problems = field_problems(exc)
    parts = [f"{p.field}: {p.message}" for p in problems[:limit]]
    more = len(problems) - limit
    if more > 0:
        parts.append(f"(and {more} more problem{'s' if more > 1 else ''})")
    return "; ".join(parts)
