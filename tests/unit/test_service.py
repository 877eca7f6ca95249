"""The service's parts that need no process: the OpenAPI document, the token check, the allow-lists."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from coordinator.docker.spec import DockerTargetSpec
from coordinator.scenario.loader import parse
from coordinator.scenario.models import Scenario
from coordinator.service.access import AllowList, read_token, target_identity, token_matches
from coordinator.service.models import RunView
from coordinator.service.server import ROUTES, openapi_document, openapi_json
from coordinator.service.submission import Rejected, check_scenario
from loadgen.errors import UserError
from tests.factories import VALID_SCENARIO, edited_scenario
from tests.paths import ROOT


def test_exported_openapi_is_current() -> None:
    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert committed == openapi_json(), "run: finishline serve --openapi > docs/openapi.json"


def test_openapi_describes_every_route_and_its_models() -> None:
    doc = openapi_document()
    for route in ROUTES:
        operation = doc["paths"][route.path][route.method.lower()]
        assert str(route.status) in operation["responses"]
        assert ("401" in operation["responses"]) is not route.public
    assert set(RunView.model_json_schema()["properties"]) == set(doc["components"]["schemas"]["RunView"]["properties"])


def _scenario(text: str) -> Scenario:
    scenario, problems, _ = parse(text, "body", Path("/tmp"))
    assert scenario is not None, problems
    return scenario


def test_allow_lists_name_what_they_refuse() -> None:
    allow = AllowList(images=("finishline/*",), urls=("http://127.0.0.1:*",))
    ok = _scenario(VALID_SCENARIO)
    assert allow.refusal(ok) is None
    assert target_identity(ok) == "http://127.0.0.1:9/v1"
    away = _scenario(edited_scenario("target.base_url", "http://user:pw@10.1.2.3:8000/v1"))
    refusal = allow.refusal(away)
    assert refusal is not None and refusal.field == "target.base_url"
    assert "http://10.1.2.3:8000/v1" in refusal.message and "pw" not in refusal.message
    assert target_identity(away) == "http://10.1.2.3:8000/v1"  # what the service keeps holds no password
    data = yaml.safe_load(VALID_SCENARIO)
    data["target"] = {
        "kind": "docker",
        "image": "evil/model:1",
    }  # not on this machine either: refused first as off the list
    refusal = allow.raw_refusal(data)
    assert refusal is not None and refusal.field == "target.image" and "evil/model:1" in refusal.message
    assert allow.image_refusal("finishline/llamacpp:1") is None
    assert allow.raw_refusal(yaml.safe_load(VALID_SCENARIO)) is None
    assert AllowList().refusal(ok) is not None  # nothing allowed unless told
    elsewhere = allow.refusal(_scenario(VALID_SCENARIO + "redis_url: redis://10.1.2.3:6379/0\n"))
    assert elsewhere is not None and elsewhere.field == "redis_url"
    outside = allow.refusal(_scenario(VALID_SCENARIO + "workers: {local: 1, remote: 2}\n"))
    assert outside is not None and outside.field == "workers"


def _refused(allow: AllowList, text: str) -> Rejected:
    with pytest.raises(Rejected) as caught:
        check_scenario(Path("/tmp"), allow, text)
    return caught.value


def test_a_submitted_scenario_reads_files_only_under_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "chats.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    (data_dir / "elsewhere.jsonl").symlink_to(tmp_path / "secret.jsonl")
    (tmp_path / "secret.jsonl").write_text('{"messages": [{"role": "user", "content": "key"}]}\n')
    allow = AllowList(urls=("http://127.0.0.1:*",), data_dir=data_dir)

    def dataset(path: str) -> str:
        return edited_scenario("workloads.0.prompt", {"kind": "jsonl", "path": path})

    checked = check_scenario(tmp_path / "runs", allow, dataset("chats.jsonl"))  # relative to the data dir
    assert str(data_dir / "chats.jsonl") in checked.text
    assert check_scenario(tmp_path / "runs", allow, dataset(str(data_dir / "chats.jsonl"))).name == "table"
    for path in ("/nonexistent/x.jsonl", "../secret.jsonl", "elsewhere.jsonl", str(tmp_path / "secret.jsonl")):
        refused = _refused(allow, dataset(path))  # refused before validation looks for the file
        assert (refused.status, refused.field) == (403, "workloads[0].prompt.path"), (path, refused.error)
        assert "outside the service's --data-dir" in refused.error
    refused = _refused(AllowList(urls=("http://127.0.0.1:*",)), dataset("chats.jsonl"))
    assert refused.status == 403 and "--data-dir" in refused.error  # no data dir: no files at all
    simulator = edited_scenario("target", {"kind": "simulator", "config": "/etc/hostname"})
    assert _refused(allow, simulator).field == "target.config"
    matrix = VALID_SCENARIO + "matrix: {target.base_url: [http://127.0.0.1:9/v1]}\n"
    assert (_refused(allow, matrix).status, _refused(allow, matrix).field) == (422, "matrix")


def test_an_allowed_image_runs_as_built() -> None:
    allow = AllowList(images=("finishline/*", "someone/*"))
    docker = {"kind": "docker", "image": "finishline/llamacpp:latest"}
    for key, value in (("build", {"context": "."}), ("entrypoint", ["/bin/sh"])):
        refused = _refused(allow, edited_scenario("target", {**docker, key: value}))
        assert (refused.status, refused.field) == (403, f"target.{key}") and key in refused.error
    # a project image's command is its entrypoint's arguments
    target = DockerTargetSpec(kind="docker", image="finishline/llamacpp:latest", command=["--parallel", "4"])
    assert allow.command_refusal(target) is None
    # an image this machine lacks (or one with no ENTRYPOINT) would run the command as a program
    bare = DockerTargetSpec.model_construct(kind="docker", image="someone/bare:1", command=["sh", "-c", "x"])
    refusal = allow.command_refusal(bare)
    assert refusal is not None and refusal.field == "target.command" and "no entrypoint" in refusal.message


def test_the_token_is_required_and_compared_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINISHLINE_TOKEN", raising=False)
    with pytest.raises(UserError, match="FINISHLINE_TOKEN"):
        read_token(None)
    monkeypatch.setenv("FINISHLINE_TOKEN", "s3cret")
    assert read_token(None) == "s3cret"
    (tmp_path / "token").write_text("from-file\n")
    assert read_token(tmp_path / "token") == "from-file"
    assert token_matches("Bearer s3cret", "s3cret")
    assert not token_matches("Bearer s3cre", "s3cret")
    assert not token_matches("Basic s3cret", "s3cret")
    assert not token_matches(None, "s3cret")
