"""The Docker engine connection, and the label that marks everything finishline starts.

Every container finishline creates carries ``finishline.run=<run_id>`` so that leftovers
of a crashed or killed run can be found and reaped by label, never by name guessing.
"""

from __future__ import annotations

import os
from pathlib import Path

import docker
import psutil
from docker.errors import DockerException, NotFound

from loadgen.errors import UserError

RUN_LABEL = "finishline.run"
ROLE_LABEL = "finishline.role"
PID_LABEL = "finishline.pid"  # the owning process: a container whose owner died is an orphan


def cache_dir() -> Path:
    """Where slow-to-make artifacts (rootfs tarball, llama-server binary) are kept between runs."""
    return Path(os.environ.get("FINISHLINE_CACHE", "/var/cache/finishline"))


def docker_client(timeout: int = 120) -> docker.DockerClient:
    """A client that answers, or one clear line saying how to start the engine."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as exc:
        raise UserError(
            "the Docker engine does not answer: start it (`.ci/start-dockerd.sh`) or set DOCKER_HOST"
            f" ({type(exc).__name__})"
        ) from exc
    return client


def owned_labels(run_id: str, role: str, **extra: str) -> dict[str, str]:
    """The labels of a container this process starts for a run: its run, its role (``target``,
    ``worker``) and its owner's pid, by which ``reap`` and ``reap_orphans`` find it; plus ``extra``."""
    return {RUN_LABEL: run_id, ROLE_LABEL: role, PID_LABEL: str(os.getpid()), **extra}


def _labels(run_id: str | None, role: str | None) -> list[str]:
    return [RUN_LABEL if run_id is None else f"{RUN_LABEL}={run_id}"] + ([f"{ROLE_LABEL}={role}"] if role else [])


def leftover_containers(client: docker.DockerClient, run_id: str | None = None, role: str | None = None) -> list[str]:
    """Ids of containers (running or not) that finishline started, for one run or for all."""
    return [c.id for c in client.containers.list(all=True, filters={"label": _labels(run_id, role)})]


def reap(client: docker.DockerClient, run_id: str | None = None, role: str | None = None) -> int:
    """Force-remove finishline's containers (of one run, or all); returns how many were removed."""
    removed = 0
    for container_id in leftover_containers(client, run_id, role):
        try:
            client.api.remove_container(container_id, force=True)
            removed += 1
        except NotFound:
            pass
    return removed


def reap_orphans(client: docker.DockerClient) -> int:
    """Remove finishline containers whose owning process (same host) no longer exists."""
    removed = 0
    for container in client.containers.list(all=True, filters={"label": RUN_LABEL}):
        pid = (container.labels or {}).get(PID_LABEL, "")
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            try:
                container.remove(force=True)
                removed += 1
            except NotFound:
                pass
    return removed


def reap_abandoned() -> int:
    """The registered cleanup: containers whose owner died; 0 when no Docker engine answers."""
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except DockerException:
        return 0
    try:
        return reap_orphans(client)
    finally:
        client.close()
