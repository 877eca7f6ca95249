"""Temporary folders a process makes for the services it runs, named so that leftovers are found.

A folder is ``finishline-{kind}-{pid}-{random}`` in the system's temporary directory, ``pid``
being the process that made it. When that process is killed (SIGKILL leaves no chance to clean
up), :func:`stale_scratch_dirs` finds the folder by its dead owner and the next run, or
``finishline clean``, removes it.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import psutil

_NAME = re.compile(r"^finishline-[a-z]+-(\d+)-")


def scratch_dir(kind: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder owned by this process (removed by its ``cleanup()``)."""
    return tempfile.TemporaryDirectory(prefix=f"finishline-{kind}-{os.getpid()}-")


def stale_scratch_dirs(root: Path | None = None) -> list[Path]:
    """Folders made by :func:`scratch_dir` in processes that no longer run."""
    root = Path(tempfile.gettempdir()) if root is None else root
    out = []
    for path in root.glob("finishline-*"):
        match = _NAME.match(path.name)
        if match and path.is_dir() and not psutil.pid_exists(int(match.group(1))):
            out.append(path)
    return out
