"""``finishline baseline save|list|show`` on a real run against the simulator: what a baseline keeps
(the typed summary, the records, the scenario, the environment, what the target was), and the
one-line refusals (a bad name, a name taken, a run that never finished, a name not stored)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from coordinator.baselines.model import LoadKind, Provenance, Tool, read_baseline
from coordinator.results.summary import read_summary
from tests.factories import synthetic_workload, write_scenario
from tests.fixtures.cli import finishline, the_run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("baseline-run")
    path = write_scenario(
        folder,
        {
            "name": "base",
            "target": {"kind": "simulator", "preset": "gpu-8b"},
            "workloads": [synthetic_workload("chat", 64, 32), synthetic_workload("long", 512, 16)],
            "phases": [{"name": "steady", "users": 4, "requests": 60}, {"name": "rate", "rate": 8, "requests": 40}],
            "workers": 1,
            "output_dir": str(folder / "runs"),
        },
    )
    done = finishline("run", str(path), "--no-live", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return the_run_dir(folder)


def test_a_saved_baseline_keeps_the_summary_records_scenario_environment_and_target(
    run_dir: Path, tmp_path: Path
) -> None:
    store = tmp_path / "baselines"
    done = finishline("baseline", "save", str(run_dir), "--name", "main-1", "--store", str(store))
    assert done.returncode == 0, done.stderr
    folder = store / "main-1"
    baseline = read_baseline(folder / "baseline.json")
    summary = read_summary(run_dir / "summary.json")
    assert baseline.tool is Tool.FINISHLINE and baseline.summary == summary
    with gzip.open(folder / "records.jsonl.gz") as kept, gzip.open(run_dir / "records.jsonl.gz") as measured:
        assert kept.read() == measured.read()
    assert (folder / "scenario.yaml").read_text() == (run_dir / "scenario.yaml").read_text()
    assert (folder / "environment.json").exists()
    assert baseline.target.kind == "simulator" and baseline.target.simulator == {"preset": "gpu-8b"}
    assert baseline.target.served_models == ["simulator"] and baseline.target.server  # from /v1/models, headers

    # One step per measured phase and workload, with its load level, in finishline's definitions.
    steps = {(s.name, s.workload): s for s in baseline.steps}
    assert set(steps) == {(p, w) for p in ("steady", "rate") for w in ("all", "chat", "long")}
    steady, rate = steps["steady", "all"], steps["rate", "all"]
    assert (steady.load.kind, steady.load.value) == (LoadKind.CONCURRENCY, 4)
    assert (rate.load.kind, rate.load.value) == (LoadKind.RATE, 8)
    assert steady.requests == summary.phases["steady"].count
    ttft = steady.metrics["ttft"]
    assert ttft.provenance is Provenance.RECORDS and ttft.p99 == summary.phases["steady"].latency_ms.ttft.p99
    assert steady.has_samples


def test_list_and_show_name_the_baselines_and_their_figures(run_dir: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "baselines")
    assert "no baselines" in finishline("baseline", "list", "--store", store).stdout
    for name in ("b-one", "b-two"):
        assert finishline("baseline", "save", str(run_dir), "--name", name, "--store", store).returncode == 0
    listed = finishline("baseline", "list", "--store", store).stdout.splitlines()
    assert [line.split()[0] for line in listed] == ["b-one", "b-two"]
    shown = finishline("baseline", "show", "b-two", "--store", store)
    assert shown.returncode == 0
    assert "step steady (concurrency 4)" in shown.stdout and "step rate (rate 8)" in shown.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["save", "{run}", "--name", "../up"], "--name"),
        (["save", "{run}", "--name", "taken"], "--force"),
        (["save", "{empty}", "--name", "x"], "no summary.json"),
        (["show", "missing"], "no baseline 'missing'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    store = str(tmp_path / "baselines")
    assert finishline("baseline", "save", str(run_dir), "--name", "taken", "--store", store).returncode == 0
    (tmp_path / "empty").mkdir()
    argv = [a.format(run=run_dir, empty=tmp_path / "empty") for a in args]
    done = finishline("baseline", *argv, "--store", store)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_force_replaces_a_baseline(run_dir: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "baselines")
    args = ("baseline", "save", str(run_dir), "--name", "same", "--store", store)
    assert finishline(*args).returncode == 0
    assert finishline(*args, "--description", "again", "--force").returncode == 0
    assert read_baseline(tmp_path / "baselines" / "same" / "baseline.json").description == "again"
