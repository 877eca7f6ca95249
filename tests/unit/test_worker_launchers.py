"""Where a scenario's workers come from: the registry's worker launchers."""

from __future__ import annotations

import pytest

from coordinator.registry import worker_launcher
from loadgen.errors import UserError


def test_containers_come_from_the_docker_feature_and_an_unknown_source_is_one_line() -> None:
    assert worker_launcher("containers").path == "coordinator.docker.workers:container_workers"
    with pytest.raises(UserError, match=r"^workers\.kubernetes: workers of this kind are not available in this build$"):
        worker_launcher("kubernetes")
