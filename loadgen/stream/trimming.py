"""The records stream trimmed below what every consumer group still needs."""

from __future__ import annotations

from collections.abc import Iterable

import redis

from loadgen.stream.replies import text


def _parse_id(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def safe_min_id(client: redis.Redis, stream: str, required_groups: Iterable[str] = ()) -> str | None:
    """The lowest id some group still needs, or ``None`` when nothing may be trimmed.

    An entry may go only when *every* group has both delivered it (its id is at or below the
    group's ``last-delivered-id``) and acknowledged it (it is older than the group's oldest
    pending entry). If a group that must see the stream (the collector of a run) does not
    exist yet, nothing is trimmed: it will read from the start.
    """
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return None  # no such stream
    if not groups:
        return None
    names = {text(g["name"]) for g in groups}
    if not set(required_groups) <= names:
        return None
    needed: list[tuple[int, int]] = []
    for group in groups:
        ms, seq = _parse_id(text(group["last-delivered-id"]))
        needed.append((ms, seq + 1))
        if int(group["pending"]) > 0:
            summary = client.xpending(stream, text(group["name"]))
            if summary and summary.get("min"):
                needed.append(_parse_id(text(summary["min"])))
    ms, seq = min(needed)
    return f"{ms}-{seq}"


def trim(client: redis.Redis, stream: str, required_groups: Iterable[str] = (), *, keep_s: float = 0.0) -> int:
    """Remove the entries no group needs any more (``XTRIM MINID``, exact); returns how many.

    Entries written in the last ``keep_s`` seconds stay even so (an entry's id begins with the
    millisecond Redis added it at): a group created that much later still finds them.
    """
    min_id = safe_min_id(client, stream, required_groups)
    if min_id is None:
        return 0
    bound = _parse_id(min_id)
    if keep_s > 0:
        seconds, micros = client.time()
        bound = min(bound, (int(seconds) * 1000 + int(micros) // 1000 - int(keep_s * 1000), 0))
    if bound <= (0, 1):
        return 0
    return int(client.xtrim(stream, minid=f"{bound[0]}-{bound[1]}", approximate=False))
