"""`finishline images`: cached builds, rebuilt only when inputs change, clear errors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from coordinator.docker.engine import cache_dir
from coordinator.docker.images import BASE_IMAGE, INPUTS_LABEL, ImageBuilder, _digest, ensure_image
from loadgen.errors import UserError


def test_digest_follows_content_of_small_files_and_stat_of_big_ones(tmp_path: Path) -> None:
    small, big = tmp_path / "Dockerfile", tmp_path / "model.gguf"
    small.write_text("FROM x\n")
    with big.open("wb") as fh:
        fh.truncate(9 * 1024 * 1024)  # above the size whose content is hashed
    first = _digest([small, big])
    assert _digest([big, small]) == first  # order does not matter
    small.write_text("FROM y\n")
    second = _digest([small, big])
    assert second != first
    os.utime(big, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert _digest([small, big]) != second
    assert _digest([small, big], ["base-id-2"]) != _digest([small, big], ["base-id-1"])


@pytest.mark.slow
@pytest.mark.docker
def test_images_are_cached_and_unknown_ones_refused(docker_engine) -> None:  # type: ignore[no-untyped-def]
    ensure_image(docker_engine, BASE_IMAGE)
    assert docker_engine.images.get(BASE_IMAGE).labels[INPUTS_LABEL]
    builder = ImageBuilder(docker_engine, cache_dir())
    assert builder.ensure_base() is None  # present: nothing to do
    builder.ensure_simulator()
    started = time.monotonic()
    assert builder.ensure_simulator() is None  # inputs unchanged: cached
    assert time.monotonic() - started < 10
    with pytest.raises(UserError, match="not built by finishline"):
        ensure_image(docker_engine, "finishline/other:latest")
