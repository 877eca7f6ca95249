"""What a worker is told: the run's configuration, each phase and the drain (Locust messages).

Everything travels over Locust's own master/worker connection, so a worker on another machine
(``finishline worker --master HOST:PORT``) needs nothing from the master's disk:

- ``finishline_hello`` (worker -> master, a :class:`WorkerHello`): sent at Locust's ``init``,
  once the worker listens for the messages below. It says who the worker is and which
  finishline it runs.
- ``finishline_config`` (master -> that worker only, a :class:`WorkerConfig`): the run's
  configuration. The master holds it as JSON in its own environment variable
  ``FINISHLINE_WORKER_CONFIG`` (never in a file: a target header may hold a secret, and a file
  outlives a killed run). Prompt and tokenizer files it names are read from the same path on
  the worker's host.
- ``finishline_refused`` (master -> that worker, a :class:`WorkerRefused`): it runs another
  finishline version; the worker says why in one line and exits non-zero.
- ``finishline_configured`` (worker -> master, a :class:`WorkerConfigured`): the worker built
  its runtime (or says why it could not). The master counts a worker as joined only then.
- ``finishline_phase`` (master -> workers, a :class:`PhaseCommand`) before each phase, and
  ``finishline_drain`` (no data) after the last one: schedule nothing new, let what was
  scheduled finish. One that arrives before the configuration is kept until it is applied.
- ``finishline_report`` / ``finishline_progress``: the master asks, each worker answers with a
  :class:`WorkerProgress`.

The API key itself never travels: the target names the environment variable that holds it,
read where the worker runs. The Redis URL does travel (with the password of a run's own
Redis that listens beyond loopback); a worker whose ``--redis-url`` is not given and whose
configured URL names a loopback or unspecified host uses the host it reached the master at
instead (:func:`worker_redis_url`).
"""

from __future__ import annotations

import ipaddress
import math
import os
import platform
import socket
import time
from importlib import metadata
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from loadgen.declaration import Spec, check_unique, readable_file
from loadgen.errors import UserError, describe_validation_error
from loadgen.replay import ReplayCommand
from loadgen.spec import ArrivalSpec, RetryPolicy, WorkloadSpec

CONFIG_ENV = "FINISHLINE_WORKER_CONFIG"
REDIS_URL_ENV = "FINISHLINE_REDIS_URL"  # set by ``finishline worker --redis-url``: the worker's own way to Redis
CONTAINER_ENV = "FINISHLINE_WORKER_CONTAINER"  # set by a container launcher: the worker's container
HELLO_MESSAGE = "finishline_hello"  # worker -> master: a WorkerHello
CONFIG_MESSAGE = "finishline_config"  # master -> one worker: a WorkerConfig
REFUSED_MESSAGE = "finishline_refused"  # master -> one worker: a WorkerRefused
CONFIGURED_MESSAGE = "finishline_configured"  # worker -> master: a WorkerConfigured
PHASE_MESSAGE = "finishline_phase"
DRAIN_MESSAGE = "finishline_drain"
REPORT_MESSAGE = "finishline_report"  # master -> workers: say how far you got (no data)
PROGRESS_MESSAGE = "finishline_progress"  # worker -> master: a WorkerProgress, the answer


class TargetConfig(Spec):
    """The endpoint under test (OpenAI-compatible). ``base_url`` ends before ``/chat/completions``."""

    base_url: str = Field(pattern=r"^https?://")
    model: str = Field(min_length=1)
    name: str = ""  # label on records and metrics; default: the base URL
    api_key_env: str | None = None  # name of the variable holding the key; the key is never stored
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=600.0, gt=0)  # longest silence between two received bytes
    continuous_usage: bool = True  # ask for vLLM's per-chunk usage (turn off for servers that reject it)
    tokenizer: Path | None = None  # the model's tokenizer.json: counts tokens when the server reports no usage

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer_readable(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else readable_file(value, info)

    @property
    def label(self) -> str:
        return self.name or self.base_url

    def api_key(self) -> str | None:
        """The key from the environment, read when needed so that it is never serialised."""
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise UserError(f"target.api_key_env: environment variable {self.api_key_env} is not set; export it")
        return key


class RecordOptions(Spec):
    """How records and samples reach Redis."""

    batch_size: int = Field(default=256, ge=1)  # records per pipelined XADD batch
    flush_interval: float = Field(default=0.1, gt=0)  # seconds between flushes of a partial batch
    sample_interval: float = Field(default=1.0, gt=0)  # seconds between worker samples
    stream_maxlen: int | None = Field(default=None, ge=1000)  # approximate cap on the records stream


class WorkerConfig(Spec):
    """Everything a worker needs for the whole run; phases only change load, not traffic shape."""

    run_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    redis_url: str = Field(pattern=r"^(redis|rediss|unix)://")
    target: TargetConfig
    workloads: list[WorkloadSpec] = Field(min_length=1)
    retry: RetryPolicy = RetryPolicy()
    seed: int = 0
    record: RecordOptions = RecordOptions()

    @model_validator(mode="after")
    def _unique_names(self) -> WorkerConfig:
        check_unique("workload", [w.name for w in self.workloads])
        return self

    @classmethod
    def load(cls, value: str | Path | None = None) -> WorkerConfig:
        """The configuration in ``FINISHLINE_WORKER_CONFIG`` (or ``value``): its JSON itself, as the
        coordinator passes it, or the path of a JSON file. One clear line on error."""
        if value is None:
            value = os.environ.get(CONFIG_ENV)
            if not value:
                raise UserError(f"{CONFIG_ENV} is not set; the coordinator sets it to the worker configuration")
        if isinstance(value, str) and value.lstrip().startswith("{"):
            raw, where = value.encode(), CONFIG_ENV
        else:
            path = Path(value)
            where = str(path)
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise UserError(f"{CONFIG_ENV}: cannot read {path}: {exc.strerror}") from None
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise UserError(f"{where}: {describe_validation_error(exc)}") from None


class WorkerProgress(Spec):
    """A worker's own account of its records, sent to the master when asked (``finishline_report``):
    how the run counts what a worker could not deliver when Redis is gone."""

    worker: str
    begun: int = Field(ge=0, description="logical requests begun (each ends as one record)")
    sent: int = Field(ge=0, description="records Redis acknowledged")
    pending: int = Field(ge=0, description="records queued, not yet written")
    dropped: int = Field(ge=0, description="records dropped: the queue was full while Redis was away")


class PhaseCommand(Spec):
    """One phase of load, broadcast by the master before it starts or changes users.

    closed: ``users`` closed-loop users in total, each one virtual user sending back to back with
    ``think_time`` seconds between requests. open: the master starts one dispatcher per worker; each
    worker dispatches at ``rate / worker_count`` requests (or sessions/chains) per second on
    the ``arrival`` schedule without waiting for replies, at most ``max_concurrency /
    worker_count`` in flight (the rest wait in the client queue, which is measured). An open phase
    with ``replay`` sends a trace's rows at their own times instead (``loadgen.replay``), each
    worker its share.
    """

    name: str = Field(min_length=1)
    mode: Literal["closed", "open"]
    users: int = Field(default=0, ge=0)
    rate: float | None = Field(default=None, gt=0)
    arrival: ArrivalSpec = ArrivalSpec()
    worker_count: int = Field(default=1, ge=1)
    think_time: float = Field(default=0.0, ge=0)
    max_concurrency: int = Field(default=1024, ge=1)
    duration: float | None = Field(default=None, gt=0)  # informational; the master ends phases
    requests: int | None = Field(
        default=None,
        ge=0,
        description="this worker's share of the phase's requests: it begins no more (loadgen.budget); None: no limit",
    )
    replay: ReplayCommand | None = None

    @model_validator(mode="after")
    def _mode_fields(self) -> PhaseCommand:
        if self.replay is not None:
            if self.mode != "open":
                raise ValueError("a replay is an open phase: mode open")
        elif self.mode == "open":
            if self.rate is None:
                raise ValueError("an open phase needs rate (requests per second)")
            if self.arrival.kind == "closed":
                raise ValueError("an open phase needs arrival.kind constant, poisson or gamma")
        elif self.users < 1:
            raise ValueError("a closed phase needs users >= 1")
        return self

    @property
    def worker_rate(self) -> float:
        return (self.rate or 0.0) / self.worker_count

    @property
    def worker_max_concurrency(self) -> int:
        return max(1, math.ceil(self.max_concurrency / self.worker_count))


def finishline_version() -> str:
    """The installed finishline's version ("unknown" when it runs from a tree that is not installed)."""
    try:
        return metadata.version("finishline")
    except metadata.PackageNotFoundError:
        return "unknown"


BOOT_ID = "/proc/sys/kernel/random/boot_id"


def boot_id() -> str:
    """This kernel's boot id ('' where unknown): processes that report the same one share
    ``CLOCK_MONOTONIC``, the clock of every timestamp a worker takes (``coordinator.results.clocks``)."""
    try:
        with open(BOOT_ID) as fh:
            return fh.read().strip()
    except OSError:
        return ""


class WorkerHello(Spec):
    """Who a worker is, sent to the master when it starts (``finishline_hello``)."""

    name: str = Field(min_length=1, description="host:pid, the name on its records and samples")
    host: str
    pid: int = Field(ge=0)
    container: str | None = Field(default=None, description="its container, when a container launcher started it")
    version: str = Field(description="the finishline it runs")
    python: str
    boot_id: str = Field(default="", description="its kernel's boot id: the same as the master's, the same clock")
    clock: float = Field(default=0.0, description="its time.monotonic() when it sent this hello")

    @classmethod
    def here(cls, name: str) -> WorkerHello:
        _, _, pid = name.rpartition(":")
        return cls(
            name=name,
            host=socket.gethostname(),
            pid=int(pid) if pid.isdigit() else os.getpid(),
            container=os.environ.get(CONTAINER_ENV) or None,
            version=finishline_version(),
            python=platform.python_version(),
            boot_id=boot_id(),
            clock=time.monotonic(),
        )


class WorkerRefused(Spec):
    """Why the master will not have a worker (``finishline_refused``)."""

    reason: str


class WorkerConfigured(Spec):
    """A worker's answer to its configuration (``finishline_configured``): ready, or why not."""

    worker: str
    error: str | None = None


def version_mismatch(master: str, worker: str) -> str | None:
    """Why a worker of ``worker``'s version cannot join a master of ``master``'s, or None when it can."""
    if master == worker:
        return None
    return f"it runs finishline {master}, this worker {worker}; install the same version"


def worker_redis_url(configured: str, master_host: str, override: str | None = None) -> str:
    """The Redis URL a worker uses: ``override`` (``--redis-url``) when given; else the configured
    one, with its host replaced by ``master_host`` (the host the worker reached the master at)
    when it names a loopback or unspecified address: the master's own name for its Redis, which
    means the master's host."""
    if override:
        return override
    parts = urlsplit(configured)
    host = parts.hostname
    if parts.scheme not in ("redis", "rediss") or host is None or not _local_name(host):
        return configured
    netloc = parts.netloc.rpartition("@")
    auth = netloc[0] + "@" if netloc[1] else ""
    new_host = f"[{master_host}]" if ":" in master_host else master_host
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{auth}{new_host}{port}"))


def _local_name(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
