"""What a scenario says about the endpoint under test: the base every target kind shares, and
the two kinds built in (an endpoint already running, and the built-in simulator).

Other kinds (a model in a Docker container) subclass :class:`TargetSpec` in their own feature
and join the scenario's ``target`` union through ``coordinator.registry``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, create_model, field_validator, model_validator

from loadgen.declaration import Spec, readable_file
from targets.simulator.config import PRESETS, SimulatorConfig, build_config, load_overrides, merge

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


def _unset(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # unset means the preset's (or the config file's) value, not null


def _partial(model: type[SimulatorConfig], name: str, leave_out: frozenset[str]) -> Any:
    """``model`` with every field optional (same types and bounds), so that a mapping states only
    what it changes; what it leaves unset is not in ``model_dump(exclude_unset=True)``."""
    fields: dict[str, Any] = {
        field: (
            Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation,
            Field(default=None, json_schema_extra=_unset),
        )
        for field, info in model.model_fields.items()
        if field not in leave_out
    }
    doc = "Simulator config keys, each over the preset's and the config file's (docs/simulator.md)."
    return create_model(name, __config__=ConfigDict(extra="forbid", frozen=True), __doc__=doc, **fields)


if TYPE_CHECKING:  # statically, the full config; at run time, its fields all optional
    SimulatorSettings = SimulatorConfig
else:  # ``model`` is the target's own field
    SimulatorSettings = _partial(SimulatorConfig, "SimulatorSettings", frozenset({"model"}))


class SimulatorTarget(TargetSpec):
    """The built-in simulator, started by the run on a free loopback port and stopped after."""

    kind: Literal["simulator"]
    name: str = Field(default="simulator", min_length=1)
    preset: str | None = Field(default=None, description="simulator preset (see `finishline simulate --help`)")
    config: Path | None = Field(default=None, description="simulator config file (relative to the scenario file)")
    settings: SimulatorSettings | None = Field(
        default=None,
        description="simulator config keys inline (max_num_seqs, step_overhead_s, ...), over the preset and the "
        "config file; what a matrix varies without a config file per variant",
    )
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

    @model_validator(mode="after")
    def _config_valid(self) -> SimulatorTarget:
        """The preset, the file and the settings together make a valid config (now, not when it starts)."""
        try:
            build_config(self.preset or "gpu-8b", self.overrides())
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(part) for part in err["loc"])
            message = str(err["msg"]).removeprefix("Value error, ")
            raise ValueError(f"simulator config{' ' + where if where else ''}: {message}") from None
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix("--")) from None
        return self

    def overrides(self) -> dict[str, Any]:
        """What this target changes of its preset: the config file's keys, then ``settings``'s over them."""
        out = load_overrides(self.config) if self.config is not None else {}
        if self.settings is not None:
            out = merge(out, self.settings.model_dump(mode="json", exclude_unset=True))
        return out
