"""Invalid scenarios: each gives one clear line (file:line: field: message) and exit code 2.

Each case runs ``finishline validate`` as the command line's entry point does (``coordinator.cli.main``),
in this process; ``tests/integration/test_scenario_cli.py`` runs the real command in a subprocess,
and ``finishline run``, which must refuse before starting anything.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from coordinator.cli import main
from tests.factories import DELETE, VALID_SCENARIO, edited_scenario

# (case id, scenario text, expected field in the message, expected words in the message)
CASES: list[tuple[str, str, str, str]] = [
    ("wrong type users", edited_scenario("phases.0.users", "two"), "phases[0].users", "valid integer"),
    ("wrong type workers", edited_scenario("workers", "many"), "workers", "valid integer"),
    ("unknown top-level key", VALID_SCENARIO + "colour: red\n", "colour", "unknown key"),
    ("unknown workload key", edited_scenario("workloads.0.temprature", 0.5), "workloads[0].temprature", "unknown key"),
    ("unknown target key", edited_scenario("target.url", "http://x"), "target.url", "unknown key"),
    ("negative duration", edited_scenario("phases.0.duration", -5), "phases[0].duration", "greater than 0"),
    ("negative duration string", edited_scenario("phases.0.duration", "-5s"), "phases[0].duration", "greater than 0"),
    ("bad duration unit", edited_scenario("phases.0.duration", "5 fortnights"), "phases[0].duration", "not a duration"),
    ("missing target", edited_scenario("target", DELETE), "target", "required"),
    ("missing workloads", edited_scenario("workloads", DELETE), "workloads", "required"),
    ("empty phases", edited_scenario("phases", []), "phases", "at least 1"),
    ("unknown target kind", edited_scenario("target.kind", "ftp"), "target.kind", "unknown kind 'ftp'"),
    (
        "unknown simulator preset",
        edited_scenario("target", {"kind": "simulator", "preset": "gpu-80b"}),
        "target.preset",
        "no simulator preset 'gpu-80b'; use one of gpu-8b, cpu-small, instant",
    ),
    (
        "phase without end",
        edited_scenario("phases.0", {"name": "s", "users": 2}),
        "phases[0]",
        "duration and/or requests",
    ),
    (
        "phase with users and rate",
        edited_scenario("phases.0", {"name": "s", "users": 2, "rate": 3, "duration": 5}),
        "phases[0]",
        "exactly one of users",
    ),
    (
        "unknown phase kind",
        edited_scenario("phases.0", {"name": "s", "kind": "spike", "users": 2, "duration": 5}),
        "phases[0].kind",
        "unknown kind 'spike'",
    ),
    (
        "uniform max below min",
        edited_scenario("workloads.0.prompt.tokens", {"kind": "uniform", "min": 50, "max": 10}),
        "workloads[0].prompt.tokens",
        "max must be >= min",
    ),
    (
        "normal negative stddev",
        edited_scenario("workloads.0.output", {"kind": "normal", "mean": 20, "stddev": -1}),
        "workloads[0].output.stddev",
        "greater than or equal to 0",
    ),
    (
        "lognormal zero mean",
        edited_scenario("workloads.0.output", {"kind": "lognormal", "mean": 0, "stddev": 3}),
        "workloads[0].output.mean",
        "greater than 0",
    ),
    (
        "unreadable dataset",
        edited_scenario("workloads.0.prompt", {"kind": "jsonl", "path": "no/such/file.jsonl"}),
        "workloads[0].prompt.path",
        "cannot read",
    ),
    (
        "unset API-key variable",
        edited_scenario("target.api_key_env", "FINISHLINE_TEST_UNSET_KEY"),
        "target.api_key_env",
        "FINISHLINE_TEST_UNSET_KEY is not set",
    ),
    ("bad base_url", edited_scenario("target.base_url", "127.0.0.1:8000"), "target.base_url", "should match pattern"),
    (
        "duplicate workload names",
        VALID_SCENARIO.replace("phases:", "  - {name: chat, prompt: {kind: synthetic, tokens: 8}}\nphases:"),
        "",
        "workload names must be unique",
    ),
    (
        "open phase with closed arrival",
        edited_scenario("phases.0", {"name": "o", "rate": 2, "duration": 5, "arrival": {"kind": "closed"}}),
        "phases[0]",
        "open phase (rate) needs",
    ),
    (
        "slo percentile 100",
        VALID_SCENARIO + "slo: {ttft_ms: 100, percentile: 100}\n",
        "slo.percentile",
        "less than 100",
    ),
    (
        "ladder without rungs end",
        edited_scenario("phases.0", {"name": "l", "kind": "ladder", "users": [1, 2]}),
        "phases[0]",
        "step_duration and/or step_requests",
    ),
    # a matrix: each variant is validated as a whole scenario, the problem named at its axis
    (
        "matrix value out of range",
        VALID_SCENARIO + "matrix: {target.read_timeout: [5, 0]}\n",
        "matrix.target.read_timeout",
        "0 gives target.read_timeout: Input should be greater than 0",
    ),
    (
        "matrix path to an unknown key",
        VALID_SCENARIO + "matrix: {target.read_timeot: [5]}\n",
        "matrix.target.read_timeot",
        "unknown key",
    ),
    (
        "matrix index past the list",
        VALID_SCENARIO + "matrix: {phases.1.users: [1, 2]}\n",
        "matrix.phases.1.users",
        "phases is a list of 1",
    ),
    ("matrix of the name", VALID_SCENARIO + "matrix: {name: [a, b]}\n", "matrix", "cannot vary the scenario's name"),
    ("matrix axis without values", VALID_SCENARIO + "matrix: {workers: []}\n", "matrix.workers", "at least 1"),
    ("not a mapping", "- just\n- a list\n", "", "mapping of keys"),
    ("broken YAML", "name: [unclosed\n", "", "not valid YAML"),
]


@pytest.fixture(autouse=True)
def unset_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINISHLINE_TEST_UNSET_KEY", raising=False)


def validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``finishline validate PATH``: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(path)])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 20
    assert len({c[0] for c in CASES}) == len(CASES)


def test_valid_base_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(VALID_SCENARIO)
    code, out, err = validate(path, capsys)
    assert code == 0, err
    assert "valid" in out


@pytest.mark.parametrize(("case", "text", "field", "words"), CASES, ids=[c[0] for c in CASES])
def test_invalid_scenario_gives_one_line_and_exit_2(
    case: str, text: str, field: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    code, out, err = validate(path, capsys)
    assert code == 2, (case, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert "Traceback" not in err
    assert line.startswith(f"finishline: {path}:"), line
    assert words in line, line
    if field:
        assert f": {field}: " in line, line
    # the line number points into the file
    number = int(line.split(f"{path}:")[1].split(":")[0])
    assert 1 <= number <= len(text.splitlines()) + 1  # a YAML error may point just past the end


def test_line_numbers_point_at_the_offending_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = textwrap.dedent(VALID_SCENARIO).replace("duration: 5s", "duration: -1")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    _, _, err = validate(path, capsys)
    expected = next(i for i, ln in enumerate(text.splitlines(), start=1) if "duration: -1" in ln)
    assert f"{path}:{expected}: phases[0].duration:" in err


def test_validate_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = edited_scenario(
        "phases.0.users", "two", base=edited_scenario("workers", -1, base=VALID_SCENARIO + "colour: red\n")
    )
    path = tmp_path / "many.yaml"
    path.write_text(text)
    code, _, err = validate(path, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 3, err


def test_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = validate(tmp_path / "absent.yaml", capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "cannot read" in err
