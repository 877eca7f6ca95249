"""What a scenario writes to run its model in a container, and to measure cold starts.

These are the user-facing halves of Docker targets: `DockerTargetSpec` (a target of
kind ``docker``) joins the scenario's target union and `ColdStartPhase` (a phase of kind
``cold_start``) joins its phase union. Both are strict (extra keys refused) so that a
typo is one clear line before any container starts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from coordinator.docker.image_names import LLAMACPP_IMAGE, PROJECT_REPOSITORIES
from coordinator.scenario.phases import PhaseSpec
from coordinator.scenario.targets import TargetSpec
from loadgen.declaration import Spec

# Docker refuses memory limits below 6 MiB; smaller values are certainly a unit mistake.
MIN_MEMORY_BYTES = 6 * 1024 * 1024


def _local_docker() -> Any:
    """A client of this machine's dockerd, or None when there is none to ask (the run says so
    when it starts). Only scenarios naming an image of their own import the SDK."""
    import docker

    try:
        return docker.from_env(timeout=5)
    except docker.errors.DockerException:
        return None


def _missing_locally(image: str) -> bool:
    """Whether a reachable dockerd says it has no ``image`` (False when there is none to ask)."""
    import docker

    client = _local_docker()
    if client is None:
        return False
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return True
    except Exception:  # noqa: BLE001 - an unreachable or broken daemon: nothing to say yet
        return False
    finally:
        client.close()
    return False


def image_entrypoint(image: str) -> list[str]:
    """The ENTRYPOINT of the local ``image`` (empty when it has none, or there is no such image)."""
    client = _local_docker()
    if client is None:
        return []
    try:
        return list(client.images.get(image).attrs["Config"].get("Entrypoint") or [])
    except Exception:  # noqa: BLE001 - no such image or no daemon: nothing runs it either
        return []
    finally:
        client.close()


def parse_memory(value: int | str | None) -> int | None:
    """``"512m"``/``"2g"``/bytes -> bytes, with Docker's own parser (same units as ``docker run -m``)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("expected a size like '512m' or '2g'")
    from docker.utils import parse_bytes  # here: reading a scenario must not import the Docker SDK

    try:
        size = parse_bytes(value if isinstance(value, int) else str(value).strip().lower())
    except Exception as exc:  # docker raises DockerException for bad units
        raise ValueError(f"{value!r} is not a size; write e.g. '512m' or '2g'") from exc
    if size < MIN_MEMORY_BYTES:
        raise ValueError(f"{value!r} is below Docker's minimum of 6m; write e.g. '512m'")
    return int(size)


class BuildSpec(Spec):
    """Build the image from a context directory when it is missing."""

    context: Path = Field(description="Directory sent to the Docker build (relative to the scenario file).")
    dockerfile: str = Field("Dockerfile", description="Dockerfile path inside the context.")
    args: dict[str, str] = Field(default_factory=dict, description="Build arguments (--build-arg).")

    @field_validator("context")
    @classmethod
    def _is_dir(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"{value}: no such directory; give the folder holding the Dockerfile")
        return value


class HealthSpec(Spec):
    """How readiness is decided: an HTTP GET on the container's port answering ``status``."""

    endpoint: str = Field("/health", description="HTTP path polled until it answers `status`.")
    status: int = Field(200, ge=100, le=599, description="Status meaning ready.")
    interval_s: float = Field(0.05, gt=0, le=10, description="Seconds between polls.")

    @field_validator("endpoint")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/', e.g. '/health'")
        return value


class DockerTargetSpec(TargetSpec):
    """Start the endpoint under test in a container with resource limits, on 127.0.0.1.

    The container uses host networking; its server must bind 127.0.0.1 on ``port``. When
    ``port`` is omitted a free port is chosen. Either way the port is passed to the
    container as the environment variable ``PORT`` and replaces ``{port}`` in ``command``.
    """

    kind: Literal["docker"] = "docker"
    name: str = Field("model", min_length=1, max_length=64, description="Label of this target in results.")
    build: BuildSpec | None = Field(None, description="Build context used when the image is missing.")
    image: str = Field(
        LLAMACPP_IMAGE,
        min_length=1,
        description="Image to run; built from `build`, or by `finishline images build` for finishline/* images, when missing.",
    )
    entrypoint: list[str] | None = Field(None, description="Overrides the image's entrypoint.")
    command: list[str] | None = Field(None, description="Overrides the image's command; '{port}' is replaced.")
    environment: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    port: int | None = Field(None, ge=1, le=65535, description="Port the server listens on (free port if omitted).")
    model: str | None = Field(None, description="Model name sent in requests (the server's default if omitted).")
    api_base: str = Field("/v1", description="Path prefix of the OpenAI-compatible API.")
    cpus: float | None = Field(None, gt=0, le=1024, description="CPU limit in cores (docker run --cpus).")
    cpuset: str | None = Field(
        None, description="CPUs the container may use, e.g. '0' or '0-1' (docker run --cpuset-cpus)."
    )
    memory: int | str | None = Field(
        None, description="Memory limit, e.g. '512m' or '2g' (docker run -m); swap is disabled."
    )
    health: HealthSpec = Field(default_factory=HealthSpec)
    readiness_timeout_s: float = Field(180.0, gt=0, le=3600, description="Seconds to wait for the health check.")
    stop_timeout_s: float = Field(5.0, ge=0, le=300, description="Seconds between SIGTERM and SIGKILL at teardown.")
    stats_interval_s: float = Field(1.0, ge=0.2, le=60, description="Seconds between container stats samples.")

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: int | str | None) -> int | str | None:
        parse_memory(value)
        return value

    @field_validator("cpuset")
    @classmethod
    def _cpuset(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", value):
            raise ValueError("write CPUs like '0', '0-1' or '0,2'")
        return value

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/', e.g. '/v1'")
        return value.rstrip("/")

    @field_validator("image")
    @classmethod
    def _buildable(cls, value: str, info: ValidationInfo) -> str:
        repo = value.split(":", 1)[0]
        if info.data.get("build") is not None or repo in PROJECT_REPOSITORIES:
            return value  # built from its context, or by `finishline images build`, when missing
        if repo.startswith("finishline/"):
            raise ValueError(
                f"{value!r} is not an image finishline builds ({', '.join(PROJECT_REPOSITORIES)}); add `build` or fix the name"
            )
        if _missing_locally(value):
            raise ValueError(
                f"{value!r} is not on this machine and the target has no `build`; add build: {{context: DIR}}, "
                "or docker build/load the image first (runs never pull)"
            )
        return value

    @property
    def memory_bytes(self) -> int | None:
        return parse_memory(self.memory)


class ColdStartPhase(PhaseSpec):
    """Measure ``starts`` cold starts of the Docker target, then the same request warm.

    Each start: container create -> process started -> port open -> ready (health) ->
    first token of the first request. Requests sent while the model loads are recorded
    (e.g. 503 ``Loading model``), not hidden. After the last start, ``warm_requests``
    identical requests give the warm TTFT that the cold penalty is compared with.
    """

    kind: Literal["cold_start"] = "cold_start"
    name: str = Field("cold_start", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    starts: int = Field(3, ge=1, le=100, description="Number of cold starts (a fresh container each).")
    warm_requests: int = Field(3, ge=1, le=1000, description="Identical requests sent once warm.")
    prompt: str = Field("Write one sentence about the sea.", min_length=1, description="Prompt of the first request.")
    max_tokens: int = Field(16, ge=1, le=4096, description="Output tokens requested by the first request.")
    probe_while_loading: bool = Field(
        True, description="Send the first request as soon as the port opens and record every refusal while loading."
    )
    probe_interval_s: float = Field(0.25, gt=0, le=10, description="Seconds between requests while loading.")
    request_timeout_s: float = Field(60.0, gt=0, le=3600, description="Timeout of each request.")
