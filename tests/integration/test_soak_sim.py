"""A compressed soak against the real simulator: with a leak it is judged drifting, without it stable.

Two runs of 50 s each, side by side, in 8-s windows. Slopes are per hour, so a minute-old run's warm-up (a
worker's heap growing by a megabyte, a p99 of 60 requests creeping up a millisecond) reads as
hundreds of percent per hour: the limits here are 2000%/h (a third per minute) for every series.
The leak (``leak_step_s_per_min``) makes every engine step 20 ms slower each minute, so TPOT
(10 ms at the start) rises about 170% a minute (~10,000%/h): it more than doubles over the run.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from coordinator.results.soak import SOAK_FILE, SlopeLimits, SoakAnalysis
from coordinator.results.summary import read_summary
from tests.factories import simulator_scenario, write_scenario
from tests.fixtures.cli import finishline, the_run_dir

LIMIT_PCT_PER_HOUR = 2000
SOAK = {
    "window_s": 8,
    "min_windows": 5,
    "max_slope_pct_per_hour": dict.fromkeys(SlopeLimits.model_fields, LIMIT_PCT_PER_HOUR),
    "max_error_rate_rise_per_hour": 0.5,
}


def _soak(folder: Path, settings: dict[str, Any]) -> tuple[int, str, SoakAnalysis, Path]:
    folder.mkdir()
    scenario = simulator_scenario(
        folder,
        [{"name": "soak", "rate": 8, "duration": "50s"}],
        target={"kind": "simulator", "preset": "gpu-8b", "settings": settings},
        soak=SOAK,
        workers=1,
    )
    done = finishline("run", str(write_scenario(folder, scenario)), timeout=240)
    run_dir = the_run_dir(folder)
    analysis = SoakAnalysis.model_validate_json((run_dir / SOAK_FILE).read_bytes())
    return done.returncode, done.stdout + done.stderr, analysis, run_dir


def test_a_leaking_simulator_drifts_and_a_sound_one_is_stable(tmp_path: Path) -> None:
    # the two soaks run side by side (each with its own simulator and Redis): 8 requests/s each
    with ThreadPoolExecutor(max_workers=2) as pool:
        leak_run = pool.submit(_soak, tmp_path / "leak", {"leak_step_s_per_min": 0.02})
        sound_run = pool.submit(_soak, tmp_path / "sound", {})
        code, output, leaking, run_dir = leak_run.result()
        sound_code, sound_output, sound, _ = sound_run.result()
    verdict = leaking.verdict
    assert verdict.verdict == "drifting", (verdict, output[-2000:])
    assert code == 7, output[-2000:]
    tpot = verdict.trends["tpot_p50"]
    assert tpot.drifting and tpot.low_pct is not None and tpot.limit is not None and tpot.low_pct > tpot.limit
    assert any(reason.startswith("TPOT p50 rises") for reason in verdict.reasons)
    summary = read_summary(run_dir / "summary.json")
    assert summary.soak == verdict and summary.outcome is not None and summary.outcome.outcome == "drifting"
    report = (run_dir / "report.html").read_text()
    assert "id='soak'" in report and "drifting" in report

    assert sound.verdict.verdict == "stable", (sound.verdict, sound_output[-2000:])
    assert sound_code == 0, sound_output[-2000:]
    assert len(sound.windows) == 6 and all(w.requests > 0 for w in sound.windows)
    assert sound.windows[-1].worker_memory is not None


pytestmark = pytest.mark.timeout(480)
