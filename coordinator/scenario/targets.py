"""What a scenario says about the endpoint under test: the base every target kind shares, and
the two kinds built in (an endpoint already running, and the built-in simulator).

Other kinds (a model in a Docker container) subclass :class:`TargetSpec` in their own feature
and join the scenario's ``target`` union through ``coordinator.registry``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from loadgen.spec import Spec, readable_file
from targets.simulator.config import PRESETS

TOKENIZER_HELP = (
    "the model's tokenizer.json (relative to the scenario file): counts tokens when the server reports no usage"
)


class TargetSpec(Spec):
    """Fields every kind of target has; ``kind`` (a ``Literal``) is each subclass's own."""

    kind: str
    name: str = Field(default="", description="label in results")
    model: str | None = Field(default=None, description="model name sent in requests")
    tokenizer: Path | None = Field(default=None, description=TOKENIZER_HELP)
    preflight: bool = Field(
        default=True,
        description="before any load, check /v1/models, the model and one short streamed request; "
        "false for endpoints without /v1/models",
    )

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer_readable(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else readable_file(value, info)


class UrlTarget(TargetSpec):
    """An OpenAI-compatible endpoint that is already running. The key is read from ``api_key_env``."""

    kind: Literal["url"] = "url"
    name: str = Field(default="", description="label in results (default: the URL)")
    base_url: str = Field(
        pattern=r"^https?://", description="ends before /chat/completions, e.g. http://127.0.0.1:8000/v1"
    )
    model: str = Field(min_length=1)
    api_key_env: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="environment variable holding the API key"
    )
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=600.0, gt=0)

    @field_validator("api_key_env")
    @classmethod
    def _key_is_set(cls, value: str | None) -> str | None:
        if value is not None and not os.environ.get(value):
            raise ValueError(f"environment variable {value} is not set; export it before running")
        return value


class SimulatorTarget(TargetSpec):
    """The built-in simulator, started by the run on a free loopback port and stopped after."""

    kind: Literal["simulator"]
    name: str = Field(default="simulator", min_length=1)
    preset: str | None = Field(default=None, description="simulator preset (see `finishline simulate --help`)")
    config: Path | None = Field(default=None, description="simulator config file (relative to the scenario file)")
    model: str = Field(default="simulator", min_length=1, description="the model name it serves and requests carry")
    trace: bool = Field(default=True, description="keep the simulator's request trace in the run directory")

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is not None and value not in PRESETS:
            raise ValueError(f"no simulator preset {value!r}; use one of {', '.join(PRESETS)}")
        return value

    @field_validator("config")
    @classmethod
    def _config_readable(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else readable_file(value, info)
