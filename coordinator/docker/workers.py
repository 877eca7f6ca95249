"""Locust workers in containers: the scenario's ``workers: {containers: N, cpus: C, memory: M}``.

Each worker is a container of ``finishline/worker`` (``finishline images build``) running
``finishline worker --master HOST:PORT``. It uses host networking, so it reaches the master,
Redis and a loopback target exactly as a local worker process does, and runs under the
scenario's CPU and memory limits (no swap: a worker short of memory is killed, not slowed into
a wrong measurement). It carries the labels of every container finishline starts (run, role
``worker``, owner pid), so what a killed run leaves behind is removed by ``finishline clean``
and by the next run (the feature's cleanup, ``engine.reap_abandoned``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import docker
from docker.errors import APIError, ImageNotFound, NotFound

from coordinator.docker.engine import docker_client, owned_labels, reap
from coordinator.docker.image_names import WORKER_IMAGE
from coordinator.docker.spec import parse_memory
from coordinator.run.launchers import MasterAddress
from coordinator.services.process import NotReady, wait_until
from loadgen.config import CONTAINER_ENV
from loadgen.errors import UserError

ROLE = "worker"
NUMBER_LABEL = "finishline.worker"
# ``{host}`` and ``{port}`` are the master's address.
MASTER_COMMAND: tuple[str, ...] = ("--master", "{host}:{port}")


def missing_image(image: str) -> str:
    """The one line for a worker image that is not on this machine (a run never builds or pulls it)."""
    return f"workers.containers: image {image} is not built; run finishline images build --only worker"


class ContainerWorkersSpec(Protocol):
    """What the launcher reads of the scenario's ``workers`` (its ``WorkersSpec``)."""

    @property
    def containers(self) -> int: ...

    @property
    def cpus(self) -> float | None: ...

    @property
    def memory(self) -> str | None: ...


@dataclass(slots=True)
class WorkerContainer:
    """One worker container this launcher started; ``exit_code`` once it is seen to have exited."""

    number: int
    name: str
    id: str
    exit_code: int | None = None
    oom_killed: bool = False
    exited: bool = False  # stopped by itself, killed (docker kill, OOM) or removed behind our back


def container_name(run_id: str, number: int) -> str:
    """``finishline-<run id>-worker-<n>``: unique on the engine (run ids are), in Docker's alphabet."""
    return f"finishline-{re.sub(r'[^a-zA-Z0-9_.-]', '-', run_id)}-worker-{number}"


class ContainerWorkers:
    """A run's workers as containers (``coordinator.run.launchers.WorkerLauncher``).

    ``entrypoint`` and ``command`` replace the image's ``finishline worker`` and its
    ``--master {host}:{port}`` (tests run a plain Locust worker that way).
    """

    def __init__(
        self,
        spec: ContainerWorkersSpec,
        run_id: str,
        client: docker.DockerClient | None = None,
        *,
        image: str = WORKER_IMAGE,
        entrypoint: Sequence[str] | None = None,
        command: Sequence[str] = MASTER_COMMAND,
    ) -> None:
        try:
            self.memory = parse_memory(spec.memory)
        except ValueError as exc:
            raise UserError(f"workers.memory: {exc}") from None
        self.nano_cpus = int(spec.cpus * 1e9) if spec.cpus else None
        self.run_id = run_id
        self.image = image
        self.entrypoint = list(entrypoint) if entrypoint is not None else None
        self.command = tuple(command)
        self.workers: list[WorkerContainer] = []
        self.run_dir: Path | None = None
        self._client = client

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker_client()
        return self._client

    def start(self, count: int, master: MasterAddress, env: dict[str, str], run_dir: Path) -> None:
        """Create and start ``count`` worker containers that join the master at ``master``."""
        self.run_dir = run_dir
        command = [part.replace("{host}", master.host).replace("{port}", str(master.port)) for part in self.command]
        for number in range(len(self.workers) + 1, len(self.workers) + count + 1):
            name = container_name(self.run_id, number)
            try:
                container = self.client.containers.create(
                    self.image,
                    command=command,
                    entrypoint=self.entrypoint,
                    name=name,
                    environment={**env, CONTAINER_ENV: name},
                    network_mode="host",  # master, Redis and a loopback target, as for a local worker
                    labels=owned_labels(self.run_id, ROLE, **{NUMBER_LABEL: str(number)}),
                    nano_cpus=self.nano_cpus,
                    mem_limit=self.memory,
                    memswap_limit=self.memory,  # no swap: short of memory is an OOM kill, not a crawl
                    detach=True,
                )
            except ImageNotFound:
                raise UserError(missing_image(self.image)) from None
            except APIError as exc:
                raise UserError(f"workers.containers: creating {name} failed: {exc.explanation}") from None
            self.workers.append(WorkerContainer(number, name, container.id))
            try:
                container.start()
            except APIError as exc:
                raise UserError(f"workers.containers: starting {name} failed: {exc.explanation}") from None

    def exited(self) -> list[tuple[str, int | None]]:
        """(container name, exit code) of each worker container that exited, was killed (137 for
        ``docker kill`` or the OOM killer) or was removed by someone else (None)."""
        for worker in self.workers:
            if not worker.exited:
                self._refresh(worker)
        return [(worker.name, worker.exit_code) for worker in self.workers if worker.exited]

    def _refresh(self, worker: WorkerContainer) -> None:
        try:
            state = self.client.api.inspect_container(worker.id)["State"]
        except NotFound:
            worker.exited = True
            return
        if state["Status"] in ("exited", "dead"):
            worker.exited = True
            worker.exit_code = int(state["ExitCode"])
            worker.oom_killed = bool(state.get("OOMKilled"))

    def stop(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the workers to exit (they do after the master's quit), kill
        those that did not, save each one's log to ``logs/worker-container-N.log`` and remove it."""
        if self._client is None:
            return  # never started: nothing to remove
        with contextlib.suppress(NotReady):  # those still running then are killed below
            wait_until(
                lambda: len(self.exited()) == len(self.workers),
                timeout=timeout,
                interval=0.2,
                what="the worker containers to exit",
            )
        try:
            for worker in self.workers:
                self._remove(worker)
        finally:
            reap(self.client, self.run_id, role=ROLE)  # also one whose create call was interrupted

    def _remove(self, worker: WorkerContainer) -> None:
        try:
            container = self.client.containers.get(worker.id)
        except NotFound:
            worker.exited = True
            return
        try:
            if not worker.exited:
                with contextlib.suppress(APIError):  # it may have exited just now
                    container.kill()
                container.wait(timeout=30)
                self._refresh(worker)
            self._save_log(worker, container.logs(stdout=True, stderr=True, timestamps=True))
        except (NotFound, APIError):
            pass
        finally:
            with contextlib.suppress(NotFound):
                container.remove(force=True)

    def _save_log(self, worker: WorkerContainer, log: bytes) -> None:
        if self.run_dir is None:
            return
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        header = (
            f"===== worker container {worker.number} ({worker.name}, {worker.id[:12]}, {self.image}):"
            f" exit code {worker.exit_code}{', OOM-killed' if worker.oom_killed else ''} =====\n"
        )
        (logs / f"worker-container-{worker.number}.log").write_bytes(header.encode() + log)


def container_workers(spec: ContainerWorkersSpec, run_id: str) -> ContainerWorkers:
    """The factory the docker feature registers for ``workers: {containers: N}``: checks, before
    anything starts, that the engine answers and the worker image is built."""
    client = docker_client()
    try:
        client.images.get(WORKER_IMAGE)
    except ImageNotFound:
        client.close()
        raise UserError(missing_image(WORKER_IMAGE)) from None
    return ContainerWorkers(spec, run_id, client)
