"""`finishline images` against the real engine: cached builds, clear errors (what makes an image
stale is ``tests/unit/test_docker_image_inputs.py``)."""

from __future__ import annotations

import time

import pytest

from coordinator.docker.engine import cache_dir
from coordinator.docker.images import BASE_IMAGE, INPUTS_LABEL, ImageBuilder, ensure_image
from loadgen.errors import UserError


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
    builder.ensure_worker()
    started = time.monotonic()
    assert builder.ensure_worker() is None  # code and installed dependencies unchanged: cached
    assert time.monotonic() - started < 10
    with pytest.raises(UserError, match="not built by finishline"):
        ensure_image(docker_engine, "finishline/other:latest")
