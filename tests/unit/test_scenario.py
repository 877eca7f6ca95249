"""Scenario models, loading, the plan built from phases, and the exported JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from coordinator.docker.image_names import WORKER_IMAGE
from coordinator.docker.spec import DockerTargetSpec
from coordinator.plan.steps import ExternalStep, LocustStep, build_plan
from coordinator.run.events import EventHook
from coordinator.scenario.loader import load_scenario, parse, validate_file
from coordinator.scenario.schema import schema_json
from coordinator.scenario.targets import SimulatorTarget, UrlTarget
from loadgen.errors import UserError
from tests.paths import ROOT

BASE = """\
name: demo
target: {kind: simulator}
workloads:
  - {name: chat, prompt: {kind: synthetic, tokens: 64}, output: 16}
"""


def scenario(text: str, base: Path = ROOT):
    sc, problems, _ = parse(BASE + text, "s.yaml", base)
    assert not problems, [str(p) for p in problems]
    return sc


def test_phases_durations_and_default_kind() -> None:
    sc = scenario(
        "phases:\n  - {name: a, users: 2, duration: 1.5m}\n  - {name: b, rate: 3, requests: 50}\n"
        "  - {name: c, kind: warmup, users: 1, duration: 250ms}\n"
    )
    a, b, c = sc.phases
    assert a.kind == "steady" and a.duration == 90.0
    assert b.requests == 50 and b.duration is None
    assert c.kind == "warmup" and c.duration == 0.25
    plan = build_plan(sc)
    sa, sb, sc_ = plan.steps
    assert isinstance(sa, LocustStep) and sa.command.mode == "closed" and sa.users == 2
    assert sb.command.mode == "open" and sb.users == sc.workers  # one dispatcher per worker
    assert sb.command.arrival.kind == "poisson" and sb.command.worker_rate == pytest.approx(1.5)
    assert not sc_.measured and sa.measured


def test_ladder_and_ramp_expand_into_steps() -> None:
    sc = scenario(
        "phases:\n  - {name: lad, kind: ladder, users: [1, 4, 8], step_duration: 10s}\n"
        "  - {name: rl, kind: ladder, rates: [0.5, 2], step_requests: 20, arrival: {kind: constant}}\n"
        "  - {name: up, kind: ramp, from_users: 2, users: 12, duration: 20s}\n"
        "  - {name: upr, kind: ramp, from_rate: 1, rate: 4, duration: 30s}\n"
    )
    steps = build_plan(sc).locust_steps()
    assert [s.name for s in steps] == ["lad.1-u1", "lad.2-u4", "lad.3-u8", "rl.1-r0.5", "rl.2-r2", "up", "upr"]
    assert [s.users for s in steps[:3]] == [1, 4, 8]
    assert steps[3].requests == 20 and steps[3].command.arrival.kind == "constant"
    up = steps[5]
    assert up.start_users == 2 and up.spawn_rate == pytest.approx(10 / 20)
    upr = steps[6].command
    assert upr.arrival.ramp_seconds == 30 and upr.arrival.ramp_from == pytest.approx(0.25)
    assert build_plan(sc).estimated_seconds() is None  # a step ends by request count


def test_target_union_includes_url_simulator_and_docker() -> None:
    assert isinstance(scenario("phases: [{name: a, users: 1, duration: 1}]").target, SimulatorTarget)
    text = BASE.replace("target: {kind: simulator}", "target: {kind: url, base_url: 'http://127.0.0.1:1/v1', model: m}")
    sc, problems, _ = parse(text + "phases: [{name: a, users: 1, duration: 1}]", "s.yaml", ROOT)
    assert not problems and isinstance(sc.target, UrlTarget)
    text = BASE.replace("target: {kind: simulator}", "target: {kind: docker, image: 'finishline/llamacpp:latest'}")
    sc, problems, _ = parse(
        text + "phases:\n  - {kind: cold_start, starts: 2}\n  - {name: w, users: 2, duration: 5}\n", "s.yaml", ROOT
    )
    assert not problems, problems
    assert isinstance(sc.target, DockerTargetSpec)
    assert isinstance(build_plan(sc).steps[0], ExternalStep)


def test_cold_start_needs_a_docker_target() -> None:
    _, problems, _ = parse(BASE + "phases: [{kind: cold_start}]", "s.yaml", ROOT)
    assert len(problems) == 1 and "cold_start needs a target of kind docker" in str(problems[0])


def test_relative_paths_are_relative_to_the_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "req.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    path = tmp_path / "s.yaml"
    path.write_text(
        BASE.replace("{kind: synthetic, tokens: 64}", "{kind: jsonl, path: data/req.jsonl}")
        + "phases: [{name: a, users: 1, duration: 1}]\n"
    )
    sc = load_scenario(path)
    assert sc.workloads[0].prompt.path == tmp_path / "data" / "req.jsonl"


def test_secrets_never_reach_the_saved_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FL_TEST_KEY", "sk-very-secret")
    text = BASE.replace(
        "target: {kind: simulator}",
        "target: {kind: url, base_url: 'http://127.0.0.1:1/v1', model: m, "
        "api_key_env: FL_TEST_KEY, headers: {Authorization: 'Bearer sk-very-secret'}}",
    )
    sc, problems, _ = parse(text + "phases: [{name: a, users: 1, duration: 1}]", "s.yaml", ROOT)
    assert not problems
    dumped = json.dumps(sc.redacted())
    assert "sk-very-secret" not in dumped and "FL_TEST_KEY" in dumped


def test_load_scenario_raises_one_line_user_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BASE + "phases: [{name: a, users: 0, duration: 1}]\nfoo: 1\n")
    with pytest.raises(UserError) as err:
        load_scenario(path)
    assert "\n" not in str(err.value) and "(and 1 more" in str(err.value)
    _, problems = validate_file(path)
    assert len(problems) == 2


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid(example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    _, problems = validate_file(example)
    assert not problems, [str(p) for p in problems]


def test_exported_schema_is_current() -> None:
    committed = (ROOT / "docs" / "scenario.schema.json").read_text()
    assert committed == schema_json(), "run: finishline schema --output docs/scenario.schema.json"
    schema = json.loads(committed)
    assert schema["additionalProperties"] is False
    assert {"target", "workloads", "phases"} <= set(schema["required"])


def test_the_scenario_reference_is_current_and_covers_every_model() -> None:
    from coordinator.schemas import markdown_reference

    schema = json.loads(schema_json())
    reference = markdown_reference(schema, "Scenario reference")
    committed = (ROOT / "docs" / "scenario-reference.md").read_text()
    assert committed == reference, "run: finishline schema --markdown --output docs/scenario-reference.md"
    for name, model in schema["$defs"].items():
        assert f"## {name}\n" in reference and f"(#{name.lower()})" in reference, name  # a section, linked
        for key in model.get("properties", {}):
            assert f"| `{key}` |" in reference, (name, key)


def test_event_hooks_call_listeners_and_survive_a_broken_one(capsys: pytest.CaptureFixture[str]) -> None:
    hook: EventHook[str] = EventHook("phase_start")
    seen: list[str] = []
    hook.add_listener(lambda name: (_ for _ in ()).throw(RuntimeError("boom")))
    hook.add_listener(seen.append)
    hook.fire("steady")
    assert seen == ["steady"]
    assert "boom" in capsys.readouterr().err


def test_the_kubernetes_example_runs_a_valid_scenario_on_one_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/kubernetes is untested on a cluster (none here); what can be checked is: its
    scenario is valid, its workers are remote ones on the master's port, and every manifest names
    that port and the worker image."""
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    folder = ROOT / "examples" / "kubernetes"
    (config_map,) = yaml.safe_load_all((folder / "scenario.yaml").read_text())
    scenario_file = tmp_path / "scenario.yaml"
    scenario_file.write_text(config_map["data"]["scenario.yaml"])
    _, problems = validate_file(scenario_file)
    assert not problems, [str(p) for p in problems]
    workers = yaml.safe_load(config_map["data"]["scenario.yaml"])["workers"]
    assert workers["remote"] == 4 and workers["port"] == 5557
    manifests = [
        doc for name in ("master.yaml", "workers.yaml") for doc in yaml.safe_load_all((folder / name).read_text())
    ]
    text = (folder / "master.yaml").read_text() + (folder / "workers.yaml").read_text()
    assert "finishline-master:5557" in text and "containerPort: 5557" in text
    images = [
        c["image"] for doc in manifests if doc["kind"] == "Job" for c in doc["spec"]["template"]["spec"]["containers"]
    ]
    assert images and all(image.endswith(WORKER_IMAGE.split("/", 1)[1]) for image in images)
    (workers_job,) = [d for d in manifests if d["metadata"]["name"] == "finishline-workers"]
    assert workers_job["spec"]["parallelism"] == workers["remote"]


def test_set_replaces_one_value_as_the_file_would_say_it(tmp_path: Path) -> None:
    from coordinator.scenario.overrides import Override, OverrideError

    path = ROOT / "examples" / "quickstart.yaml"
    sets = [
        Override.parse("target.settings.step_overhead_s=0.011"),  # a mapping the file lacks is made
        Override.parse("phases.1.users=8"),
        Override.parse("slo.percentile=95"),
    ]
    scenario, problems = validate_file(path, sets=sets)
    assert problems == [] and scenario is not None
    assert isinstance(scenario.target, SimulatorTarget) and scenario.target.settings is not None
    assert scenario.target.settings.step_overhead_s == 0.011
    assert scenario.phases[1].users == 8 and scenario.slo is not None and scenario.slo.percentile == 95
    _, problems = validate_file(path, sets=[Override.parse("phases.1.users=lots")])
    assert [p.field for p in problems] == ["phases[1].users"], problems
    _, problems = validate_file(path, sets=[Override.parse("phases.7.users=1")])
    assert len(problems) == 1 and "a list of 3; use an index from 0 to 2" in problems[0].message
    _, problems = validate_file(path, sets=[Override.parse("name.first=x")])
    assert "name is a value, not a mapping or a list" in problems[0].message
    for bad in ("users", "=3", "a..b=1"):
        with pytest.raises(OverrideError, match="write KEY=VALUE"):
            Override.parse(bad)
