"""A scenario's matrix: its variants (the product of the axes, each a whole valid scenario), their
names, its mistakes (one line at the axis), the simulator's inline settings, and what a matrix
reports (its verdict, matrix.json, the table side by side)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from coordinator.results.matrix import (
    MatrixResult,
    PhaseFigures,
    matrix_outcome,
    read_matrix,
    schema_json,
    text_table,
)
from coordinator.results.matrix_report import write_matrix
from coordinator.results.outcome import Outcome, decide
from coordinator.results.summarize import summarize
from coordinator.results.summary import ALL, PhaseWindow, RunInfo
from coordinator.run.targets import SimulatorProcess
from coordinator.scenario.loader import validate_file
from coordinator.scenario.matrix import MAX_VARIANTS, variant_names, variants
from coordinator.scenario.models import Scenario
from coordinator.scenario.targets import SimulatorTarget
from tests.factories import record, simulator_scenario, write_scenario
from tests.paths import ROOT


def _scenario(tmp_path: Path, matrix: dict[str, list[Any]], **fields: Any) -> tuple[Scenario | None, list[str]]:
    data = simulator_scenario(tmp_path, [{"name": "steady", "users": 4, "duration": "5s"}], matrix=matrix, **fields)
    scenario, problems = validate_file(write_scenario(tmp_path, data))
    return scenario, [str(p) for p in problems]


def _ok(tmp_path: Path, matrix: dict[str, list[Any]], **fields: Any) -> Scenario:
    scenario, problems = _scenario(tmp_path, matrix, **fields)
    assert not problems and scenario is not None, problems
    return scenario


def test_variants_are_the_product_of_the_axes_first_axis_slowest(tmp_path: Path) -> None:
    scenario = _ok(tmp_path, {"target.settings.max_num_seqs": [8, 32], "phases.0.users": [1, 4, 16]})
    found = variants(scenario)
    assert [v.name for v in found] == [
        "max_num_seqs=8,users=1",
        "max_num_seqs=8,users=4",
        "max_num_seqs=8,users=16",
        "max_num_seqs=32,users=1",
        "max_num_seqs=32,users=4",
        "max_num_seqs=32,users=16",
    ]
    for variant in found:
        target = variant.scenario.target
        assert isinstance(target, SimulatorTarget) and target.settings is not None
        assert target.settings.max_num_seqs == variant.values["target.settings.max_num_seqs"]
        assert variant.scenario.phases[0].users == variant.values["phases.0.users"]  # type: ignore[attr-defined]
        assert not variant.scenario.matrix  # a variant is a plain scenario: its runs are like any other
        # everything the matrix does not vary is the scenario's own
        assert variant.scenario.workloads == scenario.workloads and variant.scenario.seed == scenario.seed
        assert target.preset == "gpu-8b"
    assert variants(_ok(tmp_path, {})) == []


def test_a_value_is_set_beside_what_the_mapping_already_holds(tmp_path: Path) -> None:
    target = {"kind": "simulator", "preset": "gpu-8b", "settings": {"step_overhead_s": 0.03}}
    scenario = _ok(tmp_path, {"target.settings.max_num_seqs": [8]}, target=target)
    (variant,) = variants(scenario)
    assert isinstance(variant.scenario.target, SimulatorTarget)
    assert variant.scenario.target.overrides() == {"step_overhead_s": 0.03, "max_num_seqs": 8}


def test_docker_environment_and_memory_axes(tmp_path: Path) -> None:
    target = {"kind": "docker", "environment": {"LLAMA_THREADS": "2"}, "memory": "1g"}
    scenario = _ok(
        tmp_path, {"target.environment.LLAMA_PARALLEL": ["1", "4"], "target.memory": ["2g", "4g"]}, target=target
    )
    found = variants(scenario)
    assert [v.name for v in found] == [
        "LLAMA_PARALLEL=1,memory=2g",
        "LLAMA_PARALLEL=1,memory=4g",
        "LLAMA_PARALLEL=4,memory=2g",
        "LLAMA_PARALLEL=4,memory=4g",
    ]
    last = found[-1].scenario.target
    assert last.environment == {"LLAMA_THREADS": "2", "LLAMA_PARALLEL": "4"}  # type: ignore[attr-defined]
    assert last.memory_bytes == 4 * 2**30  # type: ignore[attr-defined]


def test_a_bad_value_is_one_line_at_its_axis_before_anything_starts(tmp_path: Path) -> None:
    _, problems = _scenario(tmp_path, {"target.settings.max_num_seqs": [8, 0]})
    assert len(problems) == 1
    text = (tmp_path / "scenario.yaml").read_text().splitlines()
    line = next(i for i, ln in enumerate(text, start=1) if "target.settings.max_num_seqs" in ln)
    assert problems[0].startswith(f"{tmp_path / 'scenario.yaml'}:{line}: matrix.target.settings.max_num_seqs: 0 gives")
    assert "greater than or equal to 1" in problems[0]


@pytest.mark.parametrize(
    ("matrix", "words"),
    [
        ({"target.settings.max_num_seq": [8]}, "target.settings.max_num_seq: unknown key"),
        ({"target.memory": ["2g"]}, "target.memory: unknown key"),  # a simulator has no memory limit
        ({"target.preset.name": ["x"]}, "target.preset is a value ('gpu-8b'), not a mapping"),
        ({"phases.2.users": [1]}, "phases is a list of 1; write an index from 0 to 0"),
        ({"phases.x.users": [1]}, "phases is a list of 1"),
        ({"output_dir": ["/tmp"]}, "cannot vary where the runs go"),
        ({"matrix.x": [1]}, "cannot vary the matrix"),
        ({"target settings": [1]}, "is not a dotted path"),
        ({"target.settings": [1], "target.settings.seed": [2]}, "overlap"),
        ({"seed": [1, 1]}, "listed twice"),
        ({"seed": list(range(MAX_VARIANTS + 1))}, f"more than {MAX_VARIANTS}"),
        ({"target.settings.max_num_seqs": ["many"]}, "valid integer"),
    ],
)
def test_matrix_mistakes(tmp_path: Path, matrix: dict[str, list[Any]], words: str) -> None:
    _, problems = _scenario(tmp_path, matrix)
    assert len(problems) == 1 and words in problems[0], problems
    assert ": matrix" in problems[0]


def test_a_config_file_per_variant_is_found_beside_the_scenario(tmp_path: Path) -> None:
    for n in (4, 16):
        (tmp_path / f"seqs{n}.yaml").write_text(f"max_num_seqs: {n}\n")
    scenario = _ok(tmp_path, {"target.config": ["seqs4.yaml", "seqs16.yaml"]})
    found = variants(scenario)
    assert [v.name for v in found] == ["config=seqs4.yaml", "config=seqs16.yaml"]
    assert [v.scenario.target.config for v in found] == [tmp_path / "seqs4.yaml", tmp_path / "seqs16.yaml"]  # type: ignore[attr-defined]


def test_names_are_safe_directory_names_and_unique() -> None:
    names = variant_names({"target.environment.ARGS": ["a b/c", "a:b/c", "..", True], "seed": [1]})
    assert len(set(names)) == len(names) == 4
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9_.,=+-]+", name) and not name.startswith("."), name
    assert names[-1] == "ARGS=true,seed=1"
    # two axes ending alike are told apart by their whole paths
    both = variant_names({"target.environment.seed": ["1"], "seed": [2]})
    assert both == ["target.environment.seed=1,seed=2"]


def test_simulator_settings_are_checked_with_the_preset_and_written_for_the_simulator(tmp_path: Path) -> None:
    config = tmp_path / "sim.yaml"
    config.write_text("max_num_seqs: 4\nstep_overhead_s: 0.02\nfaults: {rates: {'429': 0.1}, after_tokens: 3}\n")
    settings = {"max_num_seqs": 8, "faults": {"after_tokens": 5}}
    target = SimulatorTarget(kind="simulator", preset="cpu-small", config=config, settings=settings)
    expected = {"max_num_seqs": 8, "step_overhead_s": 0.02, "faults": {"rates": {"429": 0.1}, "after_tokens": 5}}
    assert target.overrides() == expected  # the settings over the file, mapping by mapping
    process = SimulatorProcess(target)
    process.port = 1
    command = process.command(tmp_path)
    written = tmp_path / SimulatorProcess.CONFIG_FILE
    assert command[command.index("--config") + 1] == str(written)
    assert yaml.safe_load(written.read_text()) == expected
    assert command[command.index("--preset") + 1] == "cpu-small"
    with pytest.raises(ValueError, match=r"settings\.output_tokens\n.*min must not exceed max"):
        SimulatorTarget(kind="simulator", settings={"output_tokens": {"min": 10, "max": 5}})
    with pytest.raises(ValueError, match="no simulator preset 'fast'"):
        SimulatorTarget(kind="simulator", preset="fast")
    without = SimulatorProcess(SimulatorTarget(kind="simulator", config=config))
    without.port = 1
    assert str(config) in without.command(tmp_path / "elsewhere")  # no settings: the file as it is


def _summary(requests: int, errors: int = 0) -> Any:
    """A run of a warm-up and ``requests`` in a 10 s steady phase, ``errors`` more failed."""
    records = [record(phase="warm", t0=5 + i * 0.1) for i in range(10)]
    records += [record(phase="steady", t0=20 + i * 9.0 / requests, ttft=0.05) for i in range(requests)]
    records += [record(phase="steady", t0=21, error="http_5xx") for _ in range(errors)]
    windows = [PhaseWindow(name="warm", start=4.0, end=7.0), PhaseWindow(name="steady", start=20.0, end=30.0)]
    return summarize(
        records,
        windows,
        None,
        run=RunInfo(id="r", scenario="m", phases=tuple(windows), records=len(records)),
        unmeasured=frozenset({"warm"}),
    )


def test_matrix_result_side_by_side_and_its_verdict(tmp_path: Path) -> None:
    from coordinator.results.matrix import variant_result

    ok = decide({})
    failed = decide({Outcome.REQUESTS_FAILED: ["60.0% of requests failed"]})
    fast = variant_result("seqs=32", {"seqs": 32}, "variants/seqs=32", "r-1", ok, _summary(200))
    slow = variant_result("seqs=8", {"seqs": 8}, "variants/seqs=8", "r-2", failed, _summary(100, errors=150))
    assert list(fast.phases) == [ALL, "steady"]  # the warm-up is left out, as from the summary's totals
    assert fast.phases["steady"] == PhaseFigures.of(_summary(200).phases["steady"])
    assert slow.phases["steady"].error_rate == pytest.approx(150 / 250)
    outcome = matrix_outcome([fast, slow])
    assert outcome.outcome is Outcome.REQUESTS_FAILED and outcome.exit_code == 6
    assert outcome.reasons == ("variant seqs=8: 60.0% of requests failed",)

    # an interruption outranks a failed variant; what did not run is named
    pending = variant_result("seqs=64", {"seqs": 64}, "variants/seqs=64")
    stopped = matrix_outcome([fast, slow, pending], "interrupted (SIGINT)")
    assert stopped.exit_code == 130
    assert "interrupted (SIGINT): 1 variant not run (seqs=64)" in stopped.reasons
    assert matrix_outcome([fast]).exit_code == 0
    both = MatrixResult(
        id="m", scenario="m", axes={"seqs": [32]}, variants=[fast, fast], outcome=matrix_outcome([fast])
    )
    assert both.headline == "OK: all 2 variants completed"

    result = MatrixResult(
        id="m-1", scenario="m", axes={"seqs": [32, 8, 64]}, variants=[fast, slow, pending], outcome=stopped
    )
    table = text_table(result)
    assert table.startswith("phase steady\n")  # one measured phase: the whole run would repeat it
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:] if line}
    assert (
        rows["seqs=32"][1] == "ok" and rows["seqs=8"][1] == "requests_failed" and rows["seqs=64"][1:3] == ["not", "run"]
    )
    assert float(rows["seqs=32"][3].replace(",", "")) > float(rows["seqs=8"][3].replace(",", ""))  # out tok/s
    write_matrix(tmp_path, result)
    assert read_matrix(tmp_path / "matrix.json") == result
    page = (tmp_path / "report.html").read_text()
    assert "<svg" in page and "exit code 130" in page and "variant seqs=8: 60.0% of requests failed" in page
    assert result.headline in page
    assert "href='variants/seqs=32/report.html'" in page and "variants/seqs=64/report.html" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)


def test_exported_matrix_schema_is_current() -> None:
    committed = (ROOT / "docs" / "matrix.schema.json").read_text()
    assert committed == schema_json(), "run: finishline schema --matrix --output docs/matrix.schema.json"
