"""The Docker feature: a model in a container as the target, its cold starts, its resources live,
and Locust workers in containers (``workers: {containers: N}``)."""

from __future__ import annotations

from coordinator.docker.spec import ColdStartPhase, DockerTargetSpec
from coordinator.registry import Capability, Feature, PhaseKind, Ref, TargetKind

FEATURE = Feature(
    name="docker",
    targets=(
        TargetKind(
            "docker",
            DockerTargetSpec,
            Ref("coordinator.docker.lifecycle:DockerTarget"),
            capabilities=frozenset({Capability.COLD_START, Capability.CONTAINER_STATS}),
        ),
    ),
    phases=(
        PhaseKind(
            "cold_start",
            ColdStartPhase,
            runner=Ref("coordinator.docker.coldstart:run_phase"),
            requires=frozenset({Capability.COLD_START}),
        ),
    ),
    extensions=(Ref("coordinator.docker.live:attach"),),
    report_sections=(Ref("coordinator.docker.report:render_container_section"),),
    commands={"images": Ref("coordinator.docker.images:images")},
    cleanups=(Ref("coordinator.docker.engine:reap_abandoned"),),
    worker_launchers={"containers": Ref("coordinator.docker.workers:container_workers")},
)
