"""What makes a finishline image stale: the digest of its build inputs."""

from __future__ import annotations

import os
import time
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from coordinator.docker.images import inputs_digest
from coordinator.docker.worker_image import (
    dependency_pins,
    installed_pins,
    package_files,
    project_packages,
    source_root,
)
from loadgen.errors import UserError
from tests.paths import ROOT


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


def test_the_worker_image_is_this_checkout_with_the_dependencies_installed_here(tmp_path: Path) -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = dependency_pins(source_root(ROOT))
    assert len(pins) == len(declared)
    assert "locust==" + metadata.version("locust") in pins  # the master's Locust, on both ends
    assert "locust==" + metadata.version("locust") in installed_pins().splitlines()
    assert "finishline==" not in installed_pins()  # its wheel is built from the checkout
    assert project_packages(ROOT) == ["loadgen", "coordinator", "targets", "dashboards"]
    files = package_files(ROOT, project_packages(ROOT))
    assert ROOT / "loadgen" / "locustfile.py" in files
    assert ROOT / "targets" / "images" / "worker" / "Dockerfile" in files
    assert not [f for f in files if "__pycache__" in f.parts or f.suffix == ".pyc"]
    with pytest.raises(UserError, match="source checkout"):
        source_root(tmp_path)


def test_a_build_remembers_how_long_it_took(tmp_path: Path) -> None:
    from coordinator.docker.build_times import TIMES_FILE, BuildTimes

    times = BuildTimes(tmp_path)
    assert times.last("llamacpp") is None
    times.record("llamacpp", 552.5)
    times.record("simulator", 12.0)
    again = BuildTimes(tmp_path)
    assert (again.last("llamacpp"), again.last("simulator")) == (552.5, 12.0)
    (tmp_path / TIMES_FILE).write_text("{not json")
    assert BuildTimes(tmp_path).last("llamacpp") is None  # only an estimate: a broken file is none
