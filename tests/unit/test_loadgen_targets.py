"""The scenario's target names the model's tokenizer; the workers' target config carries it, so a
server without usage reports still gets token counts from the model's own tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from coordinator.run.targets import lifecycle_for, target_config
from coordinator.scenario.loader import load_scenario, validate_file
from loadgen.client import EndpointClient
from loadgen.config import WorkerConfig

TARGETS = {
    "url": "{kind: url, base_url: 'http://127.0.0.1:1/v1', model: m, tokenizer: tok/tokenizer.json}",
    "simulator": "{kind: simulator, tokenizer: tok/tokenizer.json}",
    "docker": "{kind: docker, image: 'finishline/llamacpp:latest', tokenizer: tok/tokenizer.json}",
}


def write_scenario(folder: Path, target: str) -> Path:
    (folder / "tok").mkdir(exist_ok=True)
    vocab = {"[UNK]": 0, "hello": 1, "world": 2}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.save(str(folder / "tok" / "tokenizer.json"))
    path = folder / "s.yaml"
    path.write_text(
        f"name: t\ntarget: {target}\nworkloads:\n  - {{name: c, prompt: {{kind: synthetic, tokens: 8}}}}\n"
        "phases: [{name: a, users: 1, duration: 1}]\n"
    )
    return path


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_target_tokenizer_reaches_the_worker_config(kind: str, tmp_path: Path) -> None:
    scenario = load_scenario(write_scenario(tmp_path, TARGETS[kind]))
    assert scenario.target.tokenizer == tmp_path / "tok" / "tokenizer.json"  # relative to the scenario file
    lifecycle = lifecycle_for(scenario.target, "r1", tmp_path)
    config = target_config(lifecycle, scenario.target, "http://127.0.0.1:1/v1")
    worker = WorkerConfig.model_validate_json(
        WorkerConfig(
            run_id="r1",
            redis_url="redis://127.0.0.1:1/0",
            target=config,
            workloads=scenario.workloads,
        ).model_dump_json()
    )  # as the coordinator writes it and a worker reads it
    assert worker.target.tokenizer == (tmp_path / "tok" / "tokenizer.json").resolve()
    client = EndpointClient(worker.target)
    try:
        assert client.count_tokens is not None and client.count_tokens("hello world hello") == 3
    finally:
        client.close()


def test_unreadable_tokenizer_names_the_field(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, TARGETS["simulator"].replace("tok/tokenizer.json", "tok/missing.json"))
    _, problems = validate_file(path)
    assert len(problems) == 1 and "target.tokenizer" in str(problems[0]) and "missing.json" in str(problems[0])
