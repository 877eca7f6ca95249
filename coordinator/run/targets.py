"""The endpoint under test, as a run sees it: start it (if the run owns it), stop it, collect its logs.

``TargetLifecycle`` is the seam: a URL target is already running, the simulator is started
as a local process on a free loopback port (on the scenario's ``workers.listen`` when workers
run elsewhere, so that they reach it), a Docker target (``coordinator.docker``) runs a
container. Each kind registers its factory in ``coordinator.registry``; what a kind can do
beyond serving requests (cold starts, container stats) is its registered capabilities. The
run calls ``start`` before any traffic, ``collect`` and ``stop`` always.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import yaml

from coordinator import registry
from coordinator.results.files import write_atomic
from coordinator.scenario.targets import SimulatorTarget, TargetSpec, UrlTarget
from coordinator.services.ports import connect_address, free_port, reachable_address, url_host
from coordinator.services.process import NotReady, http_ok, start_process, stop_process
from loadgen.config import TargetConfig
from loadgen.errors import UserError


@runtime_checkable
class TargetLifecycle(Protocol):
    """What a run needs from a target: an OpenAI-compatible base URL for as long as it lasts."""

    name: str  # label on records and metrics
    model: str | None  # model name sent in requests (None: the server's default, if it has one)

    def start(self, run_dir: Path) -> str:
        """Make the endpoint ready; return its base URL (ending before ``/chat/completions``)."""

    def stop(self) -> None:
        """Release everything started; safe to call twice and after a failed ``start``."""

    def collect(self, run_dir: Path) -> None:
        """Copy what the target knows (logs, traces) into the run directory."""


class ExistingEndpoint:
    """A URL target: nothing to start or stop."""

    def __init__(self, spec: UrlTarget, run_id: str = "", run_dir: Path | None = None) -> None:
        self.spec = spec
        self.name = spec.name or spec.base_url
        self.model: str | None = spec.model

    def start(self, run_dir: Path) -> str:
        return self.spec.base_url.rstrip("/")

    def stop(self) -> None:
        return None

    def collect(self, run_dir: Path) -> None:
        return None


def simulator_command(
    port: int,
    *,
    host: str = "127.0.0.1",
    preset: str | None = None,
    config: Path | None = None,
    trace: Path | None = None,
    model: str | None = None,
) -> list[str]:
    """``python -m targets.simulator`` on ``host:port`` (this Python): the run's simulator, the
    tests' and the benchmarks'. ``None`` leaves an option to the simulator's default."""
    cmd = [sys.executable, "-m", "targets.simulator", "--host", host, "--port", str(port)]
    for option, value in (("--preset", preset), ("--config", config), ("--trace", trace), ("--model", model)):
        if value is not None:
            cmd += [option, str(value)]
    return cmd


class SimulatorProcess:
    """The built-in simulator as a child process on a free port of :attr:`listen` (127.0.0.1 unless
    the run's workers are elsewhere); its trace goes to the run dir."""

    TRACE_FILE = "simulator_trace.jsonl"
    LOG_FILE = "simulator.log"
    CONFIG_FILE = "simulator_config.yaml"  # the config file and the inline settings, merged, as it ran

    def __init__(
        self, spec: SimulatorTarget, run_id: str = "", run_dir: Path | None = None, startup_timeout: float = 30.0
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.model: str | None = spec.model
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.listen = "127.0.0.1"  # where it listens; the run sets the scenario's workers.listen when it must

    def command(self, run_dir: Path) -> list[str]:
        assert self.port is not None, "start() chooses the port"
        config = self.spec.config
        if self.spec.settings is not None:  # one file: the config file's keys with the settings over them
            config = run_dir / self.CONFIG_FILE
            write_atomic(config, yaml.safe_dump(self.spec.overrides(), sort_keys=False))
        return simulator_command(
            self.port,
            host=self.listen,
            preset=self.spec.preset or None,
            config=config,
            trace=run_dir / self.TRACE_FILE if self.spec.trace else None,
            model=self.spec.model,  # it serves the name the requests carry
        )

    def start(self, run_dir: Path) -> str:
        self.port = free_port(self.listen)
        local = f"http://{url_host(connect_address(self.listen))}:{self.port}"
        try:
            self.process = start_process(
                self.command(run_dir),
                ready=lambda: http_ok(f"{local}/health") or http_ok(f"{local}/v1/models"),
                what="the simulator",
                timeout=self.startup_timeout,
                log_path=run_dir / self.LOG_FILE,
            )
        except NotReady as exc:
            raise UserError(f"target: {exc}") from None
        return f"http://{url_host(reachable_address(self.listen))}:{self.port}/v1"  # what workers anywhere reach

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self.process = None

    def collect(self, run_dir: Path) -> None:
        return None  # the trace and log are written into the run directory directly


def lifecycle_for(spec: TargetSpec, run_id: str, run_dir: Path) -> TargetLifecycle:
    """The lifecycle object of a scenario's target, made by the factory its kind registered."""
    factory = registry.target_kind(spec.kind).lifecycle.load()
    lifecycle = factory(spec, run_id, run_dir)
    if not isinstance(lifecycle, TargetLifecycle):
        raise TypeError(f"target kind {spec.kind}: {factory!r} made no TargetLifecycle")
    return lifecycle


def target_config(lifecycle: TargetLifecycle, spec: TargetSpec, base_url: str) -> TargetConfig:
    """What the workers are told about the target: never the key itself, only its variable's name."""
    extra: dict[str, Any] = {}
    if spec.tokenizer is not None:  # the same file the scenario named, for any kind of target
        extra["tokenizer"] = spec.tokenizer.expanduser().resolve()
    if isinstance(spec, UrlTarget):
        extra |= {
            "api_key_env": spec.api_key_env,
            "headers": spec.headers,
            "connect_timeout": spec.connect_timeout,
            "read_timeout": spec.read_timeout,
        }
    return TargetConfig(base_url=base_url, model=lifecycle.model or "default", name=lifecycle.name, **extra)


def loopback_env(*hosts: str) -> dict[str, str]:
    """Environment for child processes: no proxies for loopback traffic (nor for ``hosts``: the
    address the run listens on for workers elsewhere)."""
    env = dict(os.environ)
    env["NO_PROXY"] = ",".join(filter(None, [env.get("NO_PROXY", ""), "127.0.0.1", "localhost", "::1", *hosts]))
    return env


def metrics_base(api_base_url: str) -> str:
    """``http://h:p/v1`` -> ``http://h:p`` (servers expose /metrics at the root)."""
    url = api_base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url
