"""``finishline recover RUN_DIR``: finish a run whose coordinator was killed before it wrote results.

A run killed that way leaves its records in two places: ``records.jsonl.gz.partial`` (what the collector
had written) and the run's Redis, which keeps running (its owner is gone, not it) with every
record the workers flushed as they stopped. Recovery drains that Redis through the collector's
group (entries already in the file are not written twice), then writes ``summary.json`` and
``report.html`` marked recovered (status ``recovered``, outcome partial, exit 3), from the phases
the run's ledger kept (``owned.json``). Without a live Redis it summarises the file alone and
says so. The scenario's SLO, self-check and checks come from the run directory's copy.
"""

from __future__ import annotations

from pathlib import Path

import redis
import yaml
from pydantic import BaseModel, ConfigDict

from coordinator.plan.steps import Plan
from coordinator.results.collector import Collector, FileCollection
from coordinator.results.outcome import Checks
from coordinator.results.selfcheck import SelfCheckLimits
from coordinator.results.slo import Slo
from coordinator.results.status import RunStatus
from coordinator.results.summary import Summary
from coordinator.results.writer import Collected, RunFacts, write_results
from coordinator.run.health import account_losses
from coordinator.run.ownership import Ledger, ledger_of
from coordinator.run.preflight import PREFLIGHT
from loadgen.errors import UserError

REASON = "recovered: the coordinator ended without writing results"
REASON_FILE = f"{REASON}; its Redis was gone too, so records not yet in the file are missing and uncounted"


class Recovered(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    run_dir: Path
    records: int
    from_redis: bool
    summary: Summary

    def line(self) -> str:
        where = "from the file and the run's Redis" if self.from_redis else "from the file only (its Redis is gone)"
        return f"recovered run {self.run_dir.name}: {self.records} records {where}; summary and report written"


def _scenario_sections(run_dir: Path) -> tuple[str, Slo | None, SelfCheckLimits, Checks]:
    """What the results need of the scenario as run (its copy holds no secret, so the target is not
    validated again: an API key variable need not be set to recover)."""
    try:
        data = yaml.safe_load((run_dir / "scenario.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{run_dir / 'scenario.yaml'}: cannot read the scenario as run ({exc})") from None
    slo = Slo.model_validate(data["slo"]) if data.get("slo") else None
    return (
        str(data.get("name", run_dir.name)),
        slo,
        SelfCheckLimits.model_validate(data.get("selfcheck") or {}),
        Checks.model_validate(data.get("checks") or {}),
    )


def _unmeasured(run_dir: Path) -> frozenset[str]:
    path = run_dir / "plan.json"
    plan = Plan.model_validate_json(path.read_bytes()) if path.exists() else Plan(steps=[])
    return plan.unmeasured() | {PREFLIGHT}


def _reachable(url: str | None) -> bool:
    if not url:
        return False
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def recover(run_dir: Path, ledger: Ledger | None = None) -> Recovered:
    """Drain what the run's Redis still holds into the run directory and write its results."""
    run_dir = run_dir.resolve()
    ledger = ledger or ledger_of(run_dir)
    if ledger is None:
        raise UserError(f"{run_dir}: no owned.json here; give the directory of a finishline run")
    if (run_dir / "summary.json").exists() and ledger.ended:
        raise UserError(f"{run_dir}: this run ended normally and has its summary; nothing to recover")
    name, slo, limits, checks = _scenario_sections(run_dir)
    collected: Collected
    losses = None
    from_redis = ledger.redis_url is not None and _reachable(ledger.redis_url)
    if from_redis and ledger.redis_url is not None:
        collector = Collector(ledger.redis_url, ledger.run_id, run_dir)
        collector.drain(timeout=60.0)
        collector.close()
        losses = account_losses((), collector.lost_by_worker(), collector.latest_samples(), 0.0, 0.0)
        collected = collector
    else:  # only the file is left: what it holds is what can be summarised
        collected = FileCollection.finish(run_dir)
    facts = RunFacts(
        run_id=ledger.run_id,
        scenario=name,
        target=None,
        started_wall=ledger.owner.started,
        windows=list(ledger.windows),
        slo=slo,
        selfcheck=limits,
        unmeasured=_unmeasured(run_dir),
        checks=checks,
        failures=(REASON if from_redis else REASON_FILE,),
        losses=losses,
    )
    summary = write_results(run_dir, facts, collected, RunStatus.RECOVERED, REASON if from_redis else REASON_FILE)
    ledger.recovered = True
    ledger.save()
    return Recovered(run_dir=run_dir, records=summary.run.records, from_redis=from_redis, summary=summary)


def recover_abandoned(ledger: Ledger) -> str | None:
    """For ``clean``: recover an abandoned run if its directory is still there; one line, or None."""
    run_dir = Path(ledger.run_dir)
    if not run_dir.is_dir():
        return None
    try:
        return recover(run_dir, ledger).line()
    except (UserError, OSError, redis.RedisError) as exc:
        return f"could not recover run {ledger.run_id}: {exc}"
