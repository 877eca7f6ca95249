"""What makes a finishline image stale: the digest of its build inputs."""

from __future__ import annotations

import os
import time
from pathlib import Path

from coordinator.docker.images import inputs_digest


def test_digest_follows_content_of_small_files_and_stat_of_big_ones(tmp_path: Path) -> None:
    small, big = tmp_path / "Dockerfile", tmp_path / "model.gguf"
    small.write_text("FROM x\n")
    with big.open("wb") as fh:
        fh.truncate(9 * 1024 * 1024)  # above the size whose content is hashed
    first = inputs_digest([small, big])
    assert inputs_digest([big, small]) == first  # order does not matter
    small.write_text("FROM y\n")
    second = inputs_digest([small, big])
    assert second != first
    os.utime(big, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert inputs_digest([small, big]) != second
    assert inputs_digest([small, big], ["base-id-2"]) != inputs_digest([small, big], ["base-id-1"])
