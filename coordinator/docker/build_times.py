"""How long each project image took to build last time, kept beside the image cache, so that
``finishline images build`` can say how long a build will take before it starts one (building
llama-server alone takes minutes)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coordinator.results.files import write_atomic

TIMES_FILE = "build-times.json"


class BuildTimesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: dict[str, float] = Field(default_factory=dict, description="image name -> seconds its last build took")


class BuildTimes:
    """The file under ``cache``: read once, written after each build. An unreadable file counts as
    none (it is only an estimate)."""

    def __init__(self, cache: Path) -> None:
        self.path = cache / TIMES_FILE
        try:
            self._file = BuildTimesFile.model_validate_json(self.path.read_bytes())
        except (OSError, ValidationError):
            self._file = BuildTimesFile()

    def last(self, name: str) -> float | None:
        return self._file.seconds.get(name)

    def record(self, name: str, seconds: float) -> None:
        self._file.seconds[name] = seconds
        with contextlib.suppress(OSError):  # a cache that cannot be written loses only the next estimate
            write_atomic(self.path, self._file.model_dump_json(indent=2))
