"""The unit lane starts no process: a test that tries fails, saying where it belongs.

Everything here runs in this Python process (a loopback server a test runs itself in a thread
or greenlet is in-process too). Real services are tests/integration's.
"""

from __future__ import annotations

import subprocess
from typing import Any

import gevent.subprocess
import pytest


def _refuse(args: Any, *_: Any, **__: Any) -> None:
    raise AssertionError(f"the unit lane starts no process ({args!r}): move this test to tests/integration")


@pytest.fixture(autouse=True)
def no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """``subprocess`` (gevent's, which the suite's monkey-patching installs, and the original)
    refuses to start anything for the length of each unit test."""
    monkeypatch.setattr(subprocess, "Popen", _refuse)
    monkeypatch.setattr(gevent.subprocess, "Popen", _refuse)
