"""A running run's live figures, read from what ``finishline run`` writes as it goes: its ledger
(``owned.json``: its Redis URL and the phases so far), its plan (``plan.json``) and its own Redis (the state hash, the
workers' begun counts, their last seconds of samples). Nothing is added to the run for this.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import redis
from pydantic import ValidationError

from coordinator.plan.steps import Plan
from coordinator.run.ownership import ledger_of
from coordinator.service.models import LiveFigures
from loadgen.samples import WorkerSample
from loadgen.stream.keys import read_hash, stream_keys
from loadgen.stream.samples import SampleReader

PLAN_FILE = "plan.json"  # the run writes its plan before it starts anything
LOOKBACK_S = 3.0  # workers sample each second: the last few seconds hold each one's latest


def live_figures(run_dir: Path) -> LiveFigures | None:
    """The figures of the run in ``run_dir`` now; None before its ledger exists. Its Redis not
    answering (the run is ending) leaves only what the ledger says."""
    ledger = ledger_of(run_dir)
    if ledger is None:
        return None
    done = [w.name for w in ledger.windows if w.end is not None]
    figures = LiveFigures(phases_done=done)
    with contextlib.suppress(OSError, ValidationError):
        planned = [step.name for step in Plan.model_validate_json((run_dir / PLAN_FILE).read_bytes()).steps]
        figures.phases_planned = planned
        figures.progress = round(sum(1 for name in planned if name in done) / len(planned), 3) if planned else None
    if ledger.redis_url is None:
        return figures
    client = redis.Redis.from_url(ledger.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    with contextlib.suppress(redis.RedisError, ValueError), client:
        keys = stream_keys(ledger.run_id)
        figures.phase = read_hash(client, keys.state).get("phase")
        figures.requests_begun = sum(int(n) for n in read_hash(client, keys.progress).values())
        latest: dict[str, WorkerSample] = {}
        for sample in SampleReader.from_now(client, keys.samples, LOOKBACK_S).read().workers:
            latest[sample.worker] = sample
        figures.users = sum(s.users for s in latest.values())
        figures.in_flight = sum(s.in_flight for s in latest.values())
        figures.achieved_rate = round(sum(s.achieved_rate for s in latest.values()), 3)
    return figures
