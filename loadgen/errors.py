"""Errors a user can fix, and how they are told about them: one line naming the field and the fix."""

from __future__ import annotations

from pydantic import ValidationError


class UserError(Exception):
    """Bad input (file, option, declaration). Its message is one line shown as is."""


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("workloads", 0, "prompt", "mean")`` -> ``workloads[0].prompt.mean``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def describe_validation_error(exc: ValidationError, limit: int = 1) -> str:
    """The first ``limit`` problems of a pydantic error, each as ``field: message``."""
    parts = []
    for err in exc.errors()[:limit]:
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling"
        elif err["type"] == "missing":
            msg = "required; add it"
        parts.append(f"{field_path(tuple(err['loc']))}: {msg}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"(and {more} more problem{'s' if more > 1 else ''})")
    return "; ".join(parts)
