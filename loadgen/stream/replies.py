"""redis-py's replies, decoded in one place.

redis-py types replies as unions of bytes and str (and of RESP2 and RESP3 shapes); the stream
modules' clients are made without ``decode_responses`` and decode through these.
"""

from __future__ import annotations

from typing import Any


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def stream_entries(reply: object) -> list[Any]:
    """The entries of the one stream an XREAD/XREADGROUP read (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    entries: list[Any]
    if isinstance(reply, list):  # RESP2: [[stream, entries]]
        entries = reply[0][1]
    elif isinstance(reply, dict):  # RESP3: {stream: entries} or {stream: [entries]}
        (entries,) = reply.values()
        if entries and isinstance(entries[0], list):
            entries = entries[0]
    else:
        raise TypeError(f"unexpected stream reply: {type(reply).__name__}")
    return entries
