"""Invalid scenarios: each gives one clear line (file:line: field: message) and exit code 2.

Every case runs the real command in a subprocess (``finishline validate``, a few through
``finishline run``, which must refuse before starting anything).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

VALID = """\
name: table
target:
  kind: url
  base_url: http://127.0.0.1:9/v1
  model: m
workloads:
  - name: chat
    prompt: {kind: synthetic, tokens: 64}
    output: 16
phases:
  - {name: steady, users: 2, duration: 5s}
"""


def _edit(path: str, value: object, base: str = VALID) -> str:
    """The valid scenario with one key changed (dotted path; list indexes as numbers)."""
    data = yaml.safe_load(base)
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return yaml.safe_dump(data, sort_keys=False)


_DELETE = object()

# (case id, scenario text, expected field in the message, expected words in the message)
CASES: list[tuple[str, str, str, str]] = [
    ("wrong type users", _edit("phases.0.users", "two"), "phases[0].users", "valid integer"),
    ("wrong type workers", _edit("workers", "many"), "workers", "valid integer"),
    ("unknown top-level key", VALID + "colour: red\n", "colour", "unknown key"),
    ("unknown workload key", _edit("workloads.0.temprature", 0.5), "workloads[0].temprature", "unknown key"),
    ("unknown target key", _edit("target.url", "http://x"), "target.url", "unknown key"),
    ("negative duration", _edit("phases.0.duration", -5), "phases[0].duration", "greater than 0"),
    ("negative duration string", _edit("phases.0.duration", "-5s"), "phases[0].duration", "greater than 0"),
    ("bad duration unit", _edit("phases.0.duration", "5 fortnights"), "phases[0].duration", "not a duration"),
    ("missing target", _edit("target", _DELETE), "target", "required"),
    ("missing workloads", _edit("workloads", _DELETE), "workloads", "required"),
    ("empty phases", _edit("phases", []), "phases", "at least 1"),
    ("unknown target kind", _edit("target.kind", "ftp"), "target.kind", "unknown kind 'ftp'"),
    ("phase without end", _edit("phases.0", {"name": "s", "users": 2}), "phases[0]", "duration and/or requests"),
    (
        "phase with users and rate",
        _edit("phases.0", {"name": "s", "users": 2, "rate": 3, "duration": 5}),
        "phases[0]",
        "exactly one of users",
    ),
    (
        "unknown phase kind",
        _edit("phases.0", {"name": "s", "kind": "spike", "users": 2, "duration": 5}),
        "phases[0].kind",
        "unknown kind 'spike'",
    ),
    (
        "uniform max below min",
        _edit("workloads.0.prompt.tokens", {"kind": "uniform", "min": 50, "max": 10}),
        "workloads[0].prompt.tokens",
        "max must be >= min",
    ),
    (
        "normal negative stddev",
        _edit("workloads.0.output", {"kind": "normal", "mean": 20, "stddev": -1}),
        "workloads[0].output.stddev",
        "greater than or equal to 0",
    ),
    (
        "lognormal zero mean",
        _edit("workloads.0.output", {"kind": "lognormal", "mean": 0, "stddev": 3}),
        "workloads[0].output.mean",
        "greater than 0",
    ),
    (
        "unreadable dataset",
        _edit("workloads.0.prompt", {"kind": "jsonl", "path": "no/such/file.jsonl"}),
        "workloads[0].prompt.path",
        "cannot read",
    ),
    (
        "unset API-key variable",
        _edit("target.api_key_env", "FINISHLINE_TEST_UNSET_KEY"),
        "target.api_key_env",
        "FINISHLINE_TEST_UNSET_KEY is not set",
    ),
    ("bad base_url", _edit("target.base_url", "127.0.0.1:8000"), "target.base_url", "should match pattern"),
    (
        "duplicate workload names",
        VALID.replace("phases:", "  - {name: chat, prompt: {kind: synthetic, tokens: 8}}\nphases:"),
        "",
        "workload names must be unique",
    ),
    (
        "open phase with closed arrival",
        _edit("phases.0", {"name": "o", "rate": 2, "duration": 5, "arrival": {"kind": "closed"}}),
        "phases[0]",
        "open phase (rate) needs",
    ),
    ("slo percentile 100", VALID + "slo: {ttft_ms: 100, percentile: 100}\n", "slo.percentile", "less than 100"),
    (
        "ladder without rungs end",
        _edit("phases.0", {"name": "l", "kind": "ladder", "users": [1, 2]}),
        "phases[0]",
        "step_duration and/or step_requests",
    ),
    ("not a mapping", "- just\n- a list\n", "", "mapping of keys"),
    ("broken YAML", "name: [unclosed\n", "", "not valid YAML"),
]


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    out = dict(os.environ)
    out.pop("FINISHLINE_TEST_UNSET_KEY", None)
    return out


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coordinator.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 20
    assert len({c[0] for c in CASES}) == len(CASES)


def test_valid_base_passes(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(VALID)
    proc = _run(["validate", str(path)], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout


@pytest.mark.parametrize(("case", "text", "field", "words"), CASES, ids=[c[0] for c in CASES])
def test_invalid_scenario_gives_one_line_and_exit_2(
    case: str, text: str, field: str, words: str, tmp_path: Path, env: dict[str, str]
) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    proc = _run(["validate", str(path)], tmp_path, env)
    assert proc.returncode == 2, (case, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert "Traceback" not in proc.stderr
    assert line.startswith(f"finishline: {path}:"), line
    assert words in line, line
    if field:
        assert f": {field}: " in line, line
    # the line number points into the file
    number = int(line.split(f"{path}:")[1].split(":")[0])
    assert 1 <= number <= len(text.splitlines()) + 1  # a YAML error may point just past the end


def test_line_numbers_point_at_the_offending_key(tmp_path: Path, env: dict[str, str]) -> None:
    text = textwrap.dedent(VALID).replace("duration: 5s", "duration: -1")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    proc = _run(["validate", str(path)], tmp_path, env)
    expected = next(i for i, ln in enumerate(text.splitlines(), start=1) if "duration: -1" in ln)
    assert f"{path}:{expected}: phases[0].duration:" in proc.stderr


def test_validate_lists_every_problem(tmp_path: Path, env: dict[str, str]) -> None:
    text = _edit("phases.0.users", "two", base=_edit("workers", -1, base=VALID + "colour: red\n"))
    path = tmp_path / "many.yaml"
    path.write_text(text)
    proc = _run(["validate", str(path)], tmp_path, env)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 3, proc.stderr


@pytest.mark.parametrize("case", ["unknown top-level key", "unset API-key variable", "missing target"])
def test_run_refuses_before_any_traffic(case: str, tmp_path: Path, env: dict[str, str]) -> None:
    text = next(c[1] for c in CASES if c[0] == case)
    path = tmp_path / "scenario.yaml"
    path.write_text(text.replace("name: table", f"name: table\noutput_dir: {tmp_path / 'runs'}"))
    proc = _run(["run", str(path), "--no-live"], tmp_path, env)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing started, no run directory


def test_missing_file_is_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    proc = _run(["validate", str(tmp_path / "absent.yaml")], tmp_path, env)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "cannot read" in proc.stderr
