"""A Docker target's life in a run: image, container, readiness, stats, log, removal.

The container runs with host networking and its server binds 127.0.0.1, so no traffic
leaves the machine. It is labelled ``finishline.run=<run_id>`` (and the owner's pid) and
is removed on every way out: success, failure, timeout, Ctrl-C. A container whose owner
died without cleaning up (SIGKILL) is reaped by the next target that starts.

A cold start replaces the running container with a fresh one and times each step:
create -> process started -> port open -> ready (health answers 200).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import docker
import orjson
from docker.errors import APIError, BuildError, NotFound
from docker.models.containers import Container

from coordinator.docker.engine import docker_client, owned_labels, reap, reap_orphans
from coordinator.docker.images import ensure_image
from coordinator.docker.spec import DockerTargetSpec
from coordinator.docker.stats import StatsSampler
from coordinator.services.ports import free_port, port_open
from coordinator.services.process import NotReady, wait_until
from loadgen.config import TargetConfig
from loadgen.errors import UserError

HOST = "127.0.0.1"


class TargetFailed(UserError):
    """The container could not serve: ``verdict`` is ``oom``, ``exited`` or ``timeout``.

    A `UserError`: the fix is the user's (memory limit, command, timeout), and the message
    says which, in one line.
    """

    def __init__(self, verdict: str, message: str) -> None:
        super().__init__(message)
        self.verdict = verdict


@dataclass(slots=True)
class StartTimings:
    """Monotonic timestamps (s) of one container start; the steps are their differences."""

    number: int
    begin: float  # before the create call
    created: float  # container created
    started: float  # process started (the start call returned)
    port_open: float | None = None  # first TCP connect succeeded
    ready: float | None = None  # health check answered its status

    def steps(self) -> dict[str, float | None]:
        def gap(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else b - a

        return {
            "create": gap(self.begin, self.created),
            "start": gap(self.created, self.started),
            "port_open": gap(self.started, self.port_open),
            "ready": gap(self.port_open, self.ready),
            "to_ready": gap(self.begin, self.ready),
        }


@dataclass
class ContainerRecord:
    """What is kept about each container of the run (``container.json``)."""

    number: int
    id: str
    image: str
    timings: dict[str, Any]
    exit_code: int | None = None
    oom_killed: bool = False
    restarts: int = 0
    verdict: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)  # as the engine applied them
    stats: dict[str, Any] = field(default_factory=dict)


def port_is_free(port: int) -> bool:
    """Nothing listens on the port (TIME_WAIT leftovers of the previous container do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


class DockerTarget:
    """Runs a `DockerTargetSpec` for one run; use as a context manager so removal is certain."""

    def __init__(
        self,
        spec: DockerTargetSpec,
        run_id: str | None = None,
        run_dir: Path | None = None,
        client: docker.DockerClient | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.model: str | None = spec.model
        self.run_id = run_id or (run_dir.name if run_dir is not None else "")
        self.run_dir = run_dir or Path(".")
        self._client = client
        self.port = spec.port or free_port()
        self.container: Container | None = None
        self.sampler: StatsSampler | None = None
        self.containers: list[ContainerRecord] = []
        self.timings: StartTimings | None = None  # of the latest start
        self._current: ContainerRecord | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker_client()
        return self._client

    # ------------------------------------------------------------------ addresses
    @property
    def root_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + self.spec.api_base

    def target_config(self, model: str | None = None) -> TargetConfig:
        """What the workers are told: the container's loopback URL and model name."""
        return TargetConfig(base_url=self.base_url, model=self.spec.model or model or "default", name=self.spec.name)

    # ------------------------------------------------------------------ the run's target protocol
    def start(self, run_dir: Path) -> str:
        """Ensure the image, start a container, wait until ready; the OpenAI base URL."""
        self.run_dir = run_dir
        self.run_id = self.run_id or run_dir.name
        self.prepare()
        try:
            self.start_container()
        except TargetFailed:
            self.stop_container()  # its log and final state are kept for the run's failure report
            raise
        return self.base_url

    def collect(self, run_dir: Path) -> None:
        """Keep the server's own metrics (llama-server ``--metrics``) while the container still runs."""
        text = self.scrape_metrics() if self.container is not None else ""
        if text:
            (run_dir / "server_metrics.prom").write_text(text)
        self.write_summary()

    def stop(self) -> None:
        self.close()

    # ------------------------------------------------------------------ life
    def __enter__(self) -> DockerTarget:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def prepare(self) -> float | None:
        """Ensure the image exists (building finishline's own ones) and reap orphans; build seconds."""
        reap_orphans(self.client)
        try:
            self.client.images.get(self.spec.image)
            return None
        except docker.errors.ImageNotFound:
            pass
        if self.spec.build is not None:
            start = time.monotonic()
            try:
                self.client.images.build(
                    path=str(self.spec.build.context),
                    dockerfile=self.spec.build.dockerfile,
                    buildargs=self.spec.build.args,
                    tag=self.spec.image,
                    network_mode="host",  # no bridge network exists where dockerd runs with --bridge=none
                    rm=True,
                    forcerm=True,  # a failed step's container is removed too
                )
            except (BuildError, APIError) as exc:
                raise UserError(f"target.build: building {self.spec.image} failed: {exc}") from None
            return time.monotonic() - start
        print(
            f"finishline: building {self.spec.image} (missing; the first llama.cpp build compiles"
            " llama-server for ~10 minutes, cached after)",
            file=sys.stderr,
            flush=True,
        )
        return ensure_image(self.client, self.spec.image)

    def start_container(self, while_loading: Callable[[], None] | None = None) -> StartTimings:
        """Start a fresh container (removing the current one) and wait until it is ready.

        ``while_loading`` is called between health polls once the port is open (the
        cold-start phase sends its request then, to record refusals while loading).
        """
        self.stop_container()
        if not port_is_free(self.port):
            raise UserError(f"target.port: {HOST}:{self.port} is already in use; free it or omit port")
        number = len(self.containers) + 1
        environment = {"HOST": HOST, "PORT": str(self.port), **self.spec.environment}
        command = [part.replace("{port}", str(self.port)) for part in self.spec.command] if self.spec.command else None
        memory = self.spec.memory_bytes
        begin = time.monotonic()
        container = self.client.containers.create(
            self.spec.image,
            command=command,
            entrypoint=self.spec.entrypoint,
            environment=environment,
            network_mode="host",
            labels=owned_labels(self.run_id, "target", **{"finishline.target": self.spec.name}),
            nano_cpus=int(self.spec.cpus * 1e9) if self.spec.cpus else None,
            cpuset_cpus=self.spec.cpuset,
            mem_limit=memory,
            memswap_limit=memory,  # no swap: a too-small limit is an OOM kill, not a crawl
            detach=True,
        )
        self.container = container
        created = time.monotonic()
        host = container.attrs.get("HostConfig") or {}
        limits = {"nano_cpus": host.get("NanoCpus"), "cpuset": host.get("CpusetCpus"), "memory": host.get("Memory")}
        self._current = ContainerRecord(number, container.id, self.spec.image, {}, limits=limits)
        self.containers.append(self._current)
        container.start()
        timings = self.timings = StartTimings(number, begin, created, time.monotonic())
        self._current.timings = asdict(timings)
        self.sampler = StatsSampler(
            self.client, container.id, number, self.run_dir / "container_stats.jsonl", self.spec.stats_interval_s
        ).start()
        deadline = begin + self.spec.readiness_timeout_s
        timings.port_open = self._wait(deadline, lambda: port_open(self.port, HOST), "the port to open", 0.005)
        self._current.timings = asdict(timings)
        timings.ready = self._wait(
            deadline, self.health_ok, "the health check", self.spec.health.interval_s, while_loading
        )
        self._current.timings = asdict(timings) | {"steps": timings.steps()}
        self.write_summary()
        return timings

    def health_ok(self) -> bool:
        """One health poll: True when the health endpoint answers the expected status."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
        try:
            conn.request("GET", self.spec.health.endpoint)
            return conn.getresponse().status == self.spec.health.status
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _wait(
        self,
        deadline: float,
        probe: Callable[[], bool],
        what: str,
        pause: float,
        between: Callable[[], None] | None = None,
    ) -> float:
        """Poll ``probe`` until True; fail fast (with the verdict) when the container dies.

        The container's state is looked up at most every 0.2 s: an inspect costs milliseconds,
        and the port is polled every few.
        """
        next_check = 0.0

        def alive() -> None:
            nonlocal next_check
            now = time.monotonic()
            if now >= next_check:
                self.check_alive()
                next_check = now + 0.2

        try:
            return wait_until(
                probe,
                timeout=max(0.0, deadline - time.monotonic()),
                interval=pause,
                what=what,
                check=alive,
                between=between,
            )
        except NotReady:
            self._fail(
                "timeout",
                f"waited {self.spec.readiness_timeout_s:g} s for {what}; raise readiness_timeout_s or check container.log",
            )

    def check_alive(self) -> None:
        """Raise `TargetFailed` (``oom`` or ``exited``) when the current container has stopped."""
        if self.container is None:
            raise TargetFailed("exited", "no container is running")
        self.container.reload()
        state = self.container.attrs["State"]
        if state.get("Running"):
            return
        if state.get("OOMKilled"):
            limit = self.spec.memory or "none"
            self._fail("oom", f"container killed by the OOM killer at memory limit {limit}; raise target.memory")
        self._fail(
            "exited", f"container exited with code {state.get('ExitCode')} before it was ready; see container.log"
        )

    def _fail(self, verdict: str, message: str) -> NoReturn:
        if self._current is not None:
            self._current.verdict = verdict
            if self.timings is not None:
                self._current.timings = asdict(self.timings) | {"steps": self.timings.steps()}
        raise TargetFailed(verdict, f"target {self.spec.name}: {message}")

    def scrape_metrics(self, path: str = "/metrics") -> str:
        """The server's own Prometheus text (llama-server ``--metrics``), '' when it has none."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            return body if response.status == 200 else ""
        except (OSError, http.client.HTTPException):
            return ""
        finally:
            conn.close()

    # ------------------------------------------------------------------ teardown
    def stop_container(self) -> None:
        """Collect the log and final state of the current container, then remove it."""
        container, self.container = self.container, None
        record, self._current = self._current, None
        if container is None:
            return
        try:
            with contextlib.suppress(APIError):
                container.stop(timeout=int(self.spec.stop_timeout_s))
            container.reload()
            state = container.attrs["State"]
            if record is not None:
                record.exit_code = state.get("ExitCode")
                record.oom_killed = bool(state.get("OOMKilled"))
                record.restarts = int(container.attrs.get("RestartCount", 0))
                if record.oom_killed and record.verdict is None:
                    record.verdict = "oom"
            self._append_log(container, record.number if record else 0)
        except (NotFound, APIError):
            pass
        finally:
            with contextlib.suppress(NotFound):
                container.remove(force=True)
            if self.sampler is not None:
                self.sampler.stop()
                if record is not None:
                    record.stats = self.sampler.summary()
                self.sampler = None
            self.write_summary()

    def _append_log(self, container: Container, number: int) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / "container.log").open("ab") as fh:
            fh.write(f"===== container {number} ({container.short_id}, {self.spec.image}) =====\n".encode())
            fh.write(container.logs(stdout=True, stderr=True, timestamps=True))

    def close(self) -> None:
        """Remove every container of this run (also one whose create call was interrupted); safe twice."""
        if self._client is None:
            return
        try:
            self.stop_container()
        finally:
            reap(self.client, self.run_id, role="target")
            self.write_summary()

    def write_summary(self) -> None:
        """``container.json``; rewritten at each start and stop, so a report written while the
        last container still runs (the run reports before it tears down) sees its stats so far."""
        if not self.containers:
            return
        if self._current is not None and self.sampler is not None:
            self._current.stats = self.sampler.summary()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "container.json").write_bytes(
            orjson.dumps([asdict(c) for c in self.containers], option=orjson.OPT_INDENT_2)
        )
