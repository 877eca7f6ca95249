"""compose.yaml as Docker Compose resolves it (``docker-compose config``): valid, loopback only,
every file it mounts exists, its images are finishline's.

What needs no Compose (the scenario it runs, what its Prometheus scrapes) is in
``tests/unit/test_compose_files.py``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.paths import ROOT

COMPOSE = ROOT / "compose.yaml"
SERVICES = {"redis", "prometheus", "grafana", "simulator", "model", "coordinator", "locust-web"}


def compose_command() -> list[str]:
    """Debian's docker-compose (v1), else the docker CLI plugin (v2)."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return ["docker", "compose"]
    pytest.fail("neither docker-compose nor `docker compose` is installed: apt-get install docker-compose")


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The file as Compose itself resolves it (anchors merged, paths absolute, profiles included)."""
    proc = subprocess.run(
        [*compose_command(), "-f", str(COMPOSE), "--profile", "interactive", "config"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def test_compose_validates_and_has_the_whole_stack(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == SERVICES


def test_every_service_stays_on_loopback(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        assert service.get("network_mode") == "host", name  # no bridge, nothing published
        assert "ports" not in service, name
        env = service.get("environment") or {}
        if "HOST" in env:
            assert env["HOST"] == "127.0.0.1", name
    redis_cmd = resolved["services"]["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--bind") + 1] == "127.0.0.1"
    assert "--web.listen-address=127.0.0.1:9090" in resolved["services"]["prometheus"]["command"]
    assert resolved["services"]["grafana"]["environment"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"


def test_mounted_files_exist_and_the_model_is_limited(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        for volume in service.get("volumes") or []:
            source = volume["source"] if isinstance(volume, dict) else volume.split(":", 1)[0]
            if Path(source).name == "runs":
                continue  # created by the first run
            assert Path(source).exists(), f"{name} mounts missing {source}"
    model = resolved["services"]["model"]
    assert model["image"] == "finishline/llamacpp:latest"
    assert float(model["cpus"]) > 0 and model["mem_limit"]


def test_images_named_in_compose_and_examples_are_the_ones_finishline_builds(resolved: dict[str, Any]) -> None:
    from coordinator.docker.image_names import APP_IMAGE, PROJECT_IMAGES

    named = {
        svc["image"] for svc in resolved["services"].values() if str(svc.get("image", "")).startswith("finishline/")
    }
    for example in (ROOT / "examples").glob("*.yaml"):
        image = (yaml.safe_load(example.read_text()).get("target") or {}).get("image")
        if image and image.startswith("finishline/"):
            named.add(image)
    assert named, "compose.yaml runs finishline's images"
    known = {*PROJECT_IMAGES.values(), APP_IMAGE}
    assert named <= known, named - known
