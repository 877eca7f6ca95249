"""Trim a records stream without dropping anything a consumer group still needs.

An entry may go only when *every* group has both delivered it (its id is at or below the
group's ``last-delivered-id``) and acknowledged it (it is older than the group's oldest
pending entry). ``XTRIM MINID`` removes entries strictly below the id we pass, so we pass
the smallest "still needed" id over all groups. If a group that must see the stream (the
collector of a run) does not exist yet, nothing is trimmed: it would read from the start.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(stream_id: str) -> tuple[int, int]:
    ms, seq = _parse(stream_id)
    return ms, seq + 1


def safe_min_id(client: redis.Redis, stream: str, required_groups: Iterable[str] = ()) -> str | None:
    """The lowest id some group still needs, or ``None`` when nothing may be trimmed."""
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return None  # no such stream
    if not groups:
        return None
    names = {_text(g["name"]) for g in groups}
    if not set(required_groups) <= names:
        return None
    needed: list[tuple[int, int]] = []
    for group in groups:
        name = _text(group["name"])
        needed.append(_next_id(_text(group["last-delivered-id"])))
        if int(group["pending"]) > 0:
            summary = client.xpending(stream, name)
            if summary and summary.get("min"):
                needed.append(_parse(_text(summary["min"])))
    ms, seq = min(needed)
    return f"{ms}-{seq}"


def trim(client: redis.Redis, stream: str, required_groups: Iterable[str] = ()) -> int:
    """Remove the entries no group needs any more; returns how many were removed."""
    min_id = safe_min_id(client, stream, required_groups)
    if min_id is None or min_id == "0-1":
        return 0
    return int(client.xtrim(stream, minid=min_id, approximate=False))
