"""Docker target and cold-start phase declarations: strict, and each mistake is one clear line."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from coordinator.docker.spec import ColdStartPhase, DockerTargetSpec, parse_memory
from coordinator.docker.stats import parse_sample
from coordinator.results.coldstart import ColdStartResult, StartResult
from loadgen.errors import describe_validation_error


def test_defaults_run_the_project_llamacpp_image() -> None:
    spec = DockerTargetSpec()
    assert spec.kind == "docker" and spec.image == "finishline/llamacpp:latest"
    assert spec.memory_bytes is None and spec.health.endpoint == "/health"


@pytest.mark.parametrize(
    ("value", "expected"), [("512m", 512 * 2**20), ("2g", 2 * 2**30), ("2G", 2 * 2**30), (64 * 2**20, 64 * 2**20)]
)
def test_memory_sizes_use_dockers_units(value: object, expected: int) -> None:
    assert DockerTargetSpec(memory=value).memory_bytes == expected  # type: ignore[arg-type]
    assert parse_memory(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "field", "hint"),
    [
        ({"memory": "lots"}, "memory", "'512m'"),
        ({"memory": "1m"}, "memory", "minimum of 6m"),
        ({"memory": True}, "memory", ""),
        ({"cpus": 0}, "cpus", "greater than 0"),
        ({"cpuset": "a-b"}, "cpuset", "'0-1'"),
        ({"port": 70000}, "port", "65535"),
        ({"image": "finishline/nope"}, "image", "add `build`"),
        ({"api_base": "v1"}, "api_base", "'/v1'"),
        ({"health": {"endpoint": "health"}}, "health.endpoint", "'/health'"),
        ({"build": {"context": "/nonexistent"}}, "build.context", "no such directory"),
        ({"readiness_timeout_s": -1}, "readiness_timeout_s", "greater than 0"),
        ({"colour": "red"}, "colour", "unknown key"),
        ({"build": {"context": "/tmp", "tag": "y"}}, "build.tag", "unknown key"),
    ],
)
def test_bad_target_fields_give_one_line_naming_the_field(fields: dict, field: str, hint: str) -> None:
    with pytest.raises(ValidationError) as err:
        DockerTargetSpec.model_validate(fields)
    line = describe_validation_error(err.value)
    assert line.startswith(f"{field}:") and hint in line and "\n" not in line


def test_a_custom_image_with_a_build_context_is_accepted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = DockerTargetSpec.model_validate({"image": "finishline/custom:1", "build": {"context": str(tmp_path)}})
    assert spec.build is not None and spec.build.dockerfile == "Dockerfile"


@pytest.mark.parametrize(
    "fields", [{"starts": 0}, {"warm_requests": 0}, {"max_tokens": 0}, {"probe_interval_s": 0}, {"name": "a b"}]
)
def test_bad_cold_start_phases_are_refused(fields: dict) -> None:
    with pytest.raises(ValidationError):
        ColdStartPhase.model_validate(fields)


def test_cold_penalty_is_median_cold_minus_median_warm() -> None:
    starts = [
        StartResult(number=1, steps={"to_ready": 1.0}, cold_ttft=0.30, warm_ttft=[0.10, 0.12]),
        StartResult(number=2, steps={"to_ready": 1.2}, cold_ttft=0.50, warm_ttft=[0.11]),
    ]
    data = ColdStartResult(phase="cold_start", starts=starts).model_dump(mode="json")
    assert data["steps"]["to_ready"] == [1.0, 1.2] and data["steps"]["create"] == []
    assert data["cold_penalty"] == pytest.approx(0.40 - 0.11)
    assert data["verdict"] is None


def test_stats_sample_matches_the_docker_cli_rules() -> None:
    raw = {
        "cpu_stats": {
            "cpu_usage": {"total_usage": 3_000_000_000},
            "system_cpu_usage": 20_000_000_000,
            "online_cpus": 2,
        },
        "precpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000}, "system_cpu_usage": 18_000_000_000},
        "memory_stats": {
            "usage": 300 * 2**20,
            "limit": 512 * 2**20,
            "failcnt": 3,
            "stats": {"total_inactive_file": 100 * 2**20},
        },
        "pids_stats": {"current": 7},
    }
    sample = parse_sample(raw, container=1, now=5.0)
    assert sample is not None
    assert sample.cpu_percent == pytest.approx(100.0)  # 1 s of CPU in 2 s of 2 CPUs' time = one core
    assert sample.memory_bytes == 200 * 2**20 and sample.memory_limit == 512 * 2**20
    assert sample.memory_failcnt == 3 and sample.pids == 7
    assert parse_sample({"cpu_stats": {}, "precpu_stats": {}}, 1, 0.0) is None  # the first sample has no delta
