"""Keep Locust's spawn messages from blocking a worker's event loop.

Locust 2.x workers handle every ``spawn`` message (each change of user count) by filtering
the master's options with ``argument_parser.default_args_dict()`` called once per option
inside a comprehension (``locust/runners.py``), and each call builds Locust's whole argument
parser. On this machine that blocks the worker's gevent loop for ~60 ms at every phase
change, delaying the reading of every stream in flight (inflated TTFT/ITL) and tripping the
self-check. The defaults cannot change during a process's life, so they are computed once.
"""

from __future__ import annotations

import functools

from locust import argument_parser


def compute_locust_defaults_once() -> None:
    """Memoise ``default_args_dict`` (idempotent; callers only test membership in the result)."""
    current = argument_parser.default_args_dict
    if not hasattr(current, "cache_info"):
        argument_parser.default_args_dict = functools.cache(current)
