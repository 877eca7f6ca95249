"""Where a run's Locust workers come from (the scenario's ``workers``).

``workers: 4`` is four local worker processes, as it always was. The long form says where each
comes from: ``local`` processes the run starts, ``remote`` ones the user starts elsewhere with
``finishline worker --master HOST:PORT``, ``containers`` a registered launcher starts
(``coordinator.registry.worker_launcher``). The run waits ``wait_s`` for all of them to join.

With workers outside this machine's loopback (remote or containers), the master, the run's
Redis (with a password) and its simulator listen on ``listen``, ``127.0.0.1`` unless the user
says otherwise: nothing is exposed beyond loopback by default.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator, model_validator

from coordinator import registry
from loadgen.declaration import Spec

DEFAULT_MASTER_PORT = 5557  # Locust's own default: what a remote worker expects when not told


class WorkersSpec(Spec):
    """How many workers of each source the run waits for, and where it listens for them."""

    local: int = Field(default=0, ge=0, le=64, description="worker processes the run starts on this machine")
    remote: int = Field(
        default=0, ge=0, le=1024, description="workers started elsewhere with `finishline worker --master HOST:PORT`"
    )
    containers: int = Field(default=0, ge=0, le=1024, description="workers a container launcher starts")
    cpus: float | None = Field(default=None, gt=0, description="containers: CPUs each worker container may use")
    memory: str | None = Field(
        default=None, pattern=r"^[0-9]+[bkmgBKMG]?$", description="containers: memory limit of each, e.g. 512m"
    )
    wait_s: float = Field(default=60.0, gt=0, le=3600, description="seconds to wait for every worker to join")
    listen: str = Field(
        default="127.0.0.1",
        description="the address the master, the run's Redis and its simulator listen on for workers "
        "outside this machine's loopback (an IP address of this machine; 0.0.0.0 for every one)",
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description=f"the master's port; default {DEFAULT_MASTER_PORT} with remote workers, else a free port",
    )

    @field_validator("listen")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address; give one of this machine's, e.g. 10.0.0.1") from None

    @model_validator(mode="after")
    def _consistent(self) -> WorkersSpec:
        if self.total < 1:
            raise ValueError("at least one worker: set local, remote or containers")
        if self.containers == 0 and (self.cpus is not None or self.memory is not None):
            raise ValueError("cpus and memory are for containers: set containers, or leave them out")
        if self.containers:
            registry.worker_launcher("containers")  # one line now, not once the run has started
        return self

    @property
    def total(self) -> int:
        return self.local + self.remote + self.containers

    @property
    def outside(self) -> bool:
        """Some workers are not this coordinator's processes on loopback: the run listens on ``listen``."""
        return self.remote > 0 or self.containers > 0

    @property
    def master_port(self) -> int | None:
        """The master's port, or None for a free one."""
        if self.port is not None:
            return self.port
        return DEFAULT_MASTER_PORT if self.remote else None

    @property
    def bind_host(self) -> str:
        """Where the run's services listen: ``listen`` with workers outside, else loopback."""
        return self.listen if self.outside else "127.0.0.1"

    @classmethod
    def of(cls, workers: int | WorkersSpec) -> WorkersSpec:
        """The long form of a scenario's ``workers``."""
        return workers if isinstance(workers, WorkersSpec) else cls(local=workers)
