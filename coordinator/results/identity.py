"""What the endpoint said about itself (``target.json`` in the run directory): written by the run's
pre-flight check, read by whoever describes the target afterwards (a baseline)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

IDENTITY_FILE = "target.json"


class TargetIdentity(BaseModel):
    """What the endpoint said about itself in the pre-flight check."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    models: list[str] = Field(default_factory=list)  # ids from /v1/models
    owned_by: str | None = None  # of the model used, when the server tells
    server: str | None = None  # the HTTP Server header, when the server sends one
    streams: bool = False  # the short streamed request answered server-sent events


def read_identity(run_dir: Path) -> TargetIdentity | None:
    """The run's ``target.json``; None when the run had no pre-flight check (or the file is unreadable)."""
    try:
        return TargetIdentity.model_validate_json((run_dir / IDENTITY_FILE).read_bytes())
    except (OSError, ValidationError):
        return None
