"""The real ``finishline`` command refuses an invalid scenario: one line, exit code 2 — and
``finishline run`` refuses before starting anything (no run directory, no process).

The table of mistakes and their messages is ``tests/unit/test_scenario_invalid.py`` (in process).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.factories import DELETE, VALID_SCENARIO, edited_scenario
from tests.fixtures.cli import finishline

MISTAKES = {
    "unknown top-level key": VALID_SCENARIO + "colour: red\n",
    "unset API-key variable": edited_scenario("target.api_key_env", "FINISHLINE_TEST_UNSET_KEY"),
    "missing target": edited_scenario("target", DELETE),
}


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    out = dict(os.environ)
    out.pop("FINISHLINE_TEST_UNSET_KEY", None)
    return out


def test_validate_says_valid_or_one_line_with_exit_2(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(VALID_SCENARIO)
    proc = finishline("validate", str(path), timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout
    path.write_text(MISTAKES["unknown top-level key"])
    proc = finishline("validate", str(path), timeout=60, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"finishline: {path}:12: colour: unknown key; remove it or check its spelling"
    ]


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_run_refuses_before_any_traffic(case: str, tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(MISTAKES[case].replace("name: table", f"name: table\noutput_dir: {tmp_path / 'runs'}"))
    proc = finishline("run", str(path), "--no-live", timeout=60, env=env)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing started, no run directory
