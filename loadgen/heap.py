"""Handing the C heap's free memory back to the system, once a minute.

A worker makes and drops a prompt, a request body and a streamed reply for every request, most
of them over 512 bytes, which Python takes from the C allocator rather than its own. glibc
keeps chunks freed in the middle of its heap for itself and seldom returns them, so a worker's
resident memory creeps up for an hour although nothing it holds grows: in the hour-long soak
through the service (``bench/service_soak.py``, 200 requests/s) a worker had grown from 108 to
133 MB after 45 minutes while tracemalloc saw its Python objects flat, and ``malloc_trim(0)``
gave 44 MB back at once. The soak analysis judges the client's memory, so a worker trims.

Where the C library has no ``malloc_trim`` (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

TRIM_EVERY_S = 60.0  # a trim costs about a millisecond per few MB it returns


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)  # glibc's
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    found: Callable[[int], int] = trim
    return found


class HeapTrimmer:
    """Calls ``malloc_trim(0)`` when asked at most every ``every_s`` seconds (``due`` decides)."""

    def __init__(self, every_s: float = TRIM_EVERY_S, trim: Callable[[int], int] | None = None) -> None:
        self.every_s = every_s
        self._trim = trim if trim is not None else _find_malloc_trim()
        self._last: float | None = None
        self.trims = 0

    @property
    def available(self) -> bool:
        return self._trim is not None

    def maybe(self, now: float) -> bool:
        """Trim if ``every_s`` have passed since the last trim (or this is the first call's
        interval end); True when it trimmed."""
        if self._trim is None:
            return False
        if self._last is None:
            self._last = now
            return False
        if now - self._last < self.every_s:
            return False
        self._last = now
        self._trim(0)
        self.trims += 1
        return True
