"""Live container stats: a Docker target's resources, published to the run's Redis every second.

The stats sampler (``coordinator/docker/stats.py``) keeps samples in the run directory;
this add-on makes them live. A thread reads the target's latest sample and the state of its
containers (OOM killed, restart count, from ``docker inspect``) and writes a
:class:`~loadgen.samples.ContainerSample` to ``finishline:{run_id}:samples``
(field ``c``). The bridge turns it into ``finishline_container_*`` series.

Attached to every run with a Docker target (registered by the Docker feature), whether or not this run
starts a bridge itself: a standalone ``finishline bridge`` on the run's Redis sees them too.
It runs from ``run_start`` until the run releases its add-ons, i.e. while the bridge runs.
"""

from __future__ import annotations

import logging
import time

import redis
from docker.errors import APIError, DockerException, NotFound

from coordinator.docker.lifecycle import DockerTarget
from coordinator.periodic import Periodic
from coordinator.run.context import RunContext
from loadgen.samples import ContainerSample, StatsSample
from loadgen.stream.samples import SampleWriter

log = logging.getLogger(__name__)


class ContainerPublisher:
    """Publishes one container sample per stats interval until stopped."""

    def __init__(self, target: DockerTarget, redis_url: str, key: str, interval: float | None = None) -> None:
        self.target = target
        self.client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=10)
        self.writer = SampleWriter(self.client, key)
        self.published = 0
        self._last: StatsSample | None = None
        self._oom: set[str] = set()  # ids of containers seen OOM killed
        self._restarts: dict[str, int] = {}  # container id -> largest RestartCount seen
        self._publishing = Periodic(
            "finishline-container-stats", interval or target.spec.stats_interval_s, self._publish_logged
        )

    def start(self) -> ContainerPublisher:
        self._publishing.start()
        return self

    def _publish_logged(self) -> None:
        try:
            self.publish()
        except (redis.RedisError, DockerException, OSError) as exc:
            log.warning("container stats: could not publish a sample: %s", exc)

    def sample(self) -> ContainerSample:
        """The target's state now; stats only when the sampler has a sample not yet published."""
        target = self.target
        container, sampler = target.container, target.sampler  # read once: the run may replace them
        stats = None
        latest = sampler.samples[-1] if sampler is not None and sampler.samples else None
        if latest is not None and latest is not self._last:
            self._last = latest
            stats = latest
        running, number = False, None
        for record in list(target.containers):  # final states of stopped containers
            self._count(record.id, record.oom_killed, record.restarts)
            if container is not None and record.id == container.id:
                number = record.number
        if container is not None:
            try:
                attrs = target.client.api.inspect_container(container.id)
            except (NotFound, APIError):
                attrs = None
            if attrs is not None:
                state = attrs.get("State") or {}
                running = bool(state.get("Running"))
                self._count(container.id, bool(state.get("OOMKilled")), int(attrs.get("RestartCount") or 0))
        return ContainerSample(
            target=target.name,
            time=time.monotonic(),
            running=running,
            container=number,
            oom_kills=len(self._oom),
            restarts=sum(self._restarts.values()),
            stats=stats if running else None,
        )

    def _count(self, container_id: str, oom_killed: bool, restarts: int) -> None:
        if oom_killed:
            self._oom.add(container_id)
        self._restarts[container_id] = max(self._restarts.get(container_id, 0), restarts)

    def publish(self) -> ContainerSample:
        sample = self.sample()
        self.writer.write(sample)
        self.published += 1
        return sample

    def stop(self) -> None:
        self._publishing.stop(timeout=10)
        self.client.close()


def attach(ctx: RunContext) -> None:
    """Run extension: publish container samples while the run lasts, if its target is a container."""
    target = ctx.target
    if not isinstance(target, DockerTarget):
        return
    publisher = ContainerPublisher(target, ctx.redis_url, ctx.keys.samples).start()
    ctx.own("container stats", publisher.stop)
