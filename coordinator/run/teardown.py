"""A run's end: why it ended (:class:`Ending`), and :class:`Teardown`, which stops what the run
started in order and writes its results, whatever happened before.

Order: windows closed -> each worker's own count asked (when it can be) -> users and Locust
processes stopped -> the collector drains the stream -> ``workers.json``, summary, CSV, report
(or a report saying why there are none) -> run state -> ``run_end`` -> what the run owns, the
target, Redis and the ledger stopped. Nothing in it raises: each part that fails is one line on
the console, and a part the results depend on makes the run partial.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from coordinator.plan.steps import Plan
from coordinator.results.collector import Collector
from coordinator.results.outcome import Outcome, RunOutcome, decide
from coordinator.results.report import write_failure_report
from coordinator.results.status import RunStatus
from coordinator.results.summary import Summary
from coordinator.results.workers import write_workers
from coordinator.results.writer import RunFacts, write_results
from coordinator.run.cluster import LocustCluster
from coordinator.run.context import RunContext
from coordinator.run.events import RunEnded
from coordinator.run.health import account_losses
from coordinator.run.ownership import Ledger
from coordinator.run.preflight import PREFLIGHT
from coordinator.run.progress import ProgressDisplay
from coordinator.scenario.models import Scenario
from coordinator.services.redis_server import RedisServer
from loadgen.config import WorkerProgress


@dataclass
class Ending:
    """Why the run ended the way it did, as the run learns it."""

    interrupted: str | None = None  # a signal's name
    target_down: str | None = None
    failures: list[str] = field(default_factory=list)  # a part failed (an error, Redis gone, ...)
    bad_input: str | None = None  # a user mistake found once the run had started (exit 2)
    redis_lost: bool = False

    @property
    def status(self) -> RunStatus:
        early = self.interrupted or self.target_down or self.failures or self.bad_input
        return RunStatus.PARTIAL if early else RunStatus.COMPLETE

    @property
    def reason(self) -> str | None:
        if self.interrupted:
            return self.interrupted
        return self.bad_input or self.target_down or (self.failures[0] if self.failures else None)


def attempt(name: str, action: Callable[[], object]) -> list[str]:
    """``action``'s failure as one line naming ``name`` (none when it worked): teardown goes on."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - teardown goes on
        return [f"{name}: {type(exc).__name__}: {exc}"]
    return []


@dataclass
class Teardown:
    """What a run started, stopped in order, and its results written (:meth:`finish`).

    ``hurry`` says whether a second signal arrived (users stopped at once, a shorter drain); it
    is asked as the teardown goes, so a signal during it still counts.
    """

    ctx: RunContext
    scenario: Scenario
    plan: Plan
    ending: Ending
    display: ProgressDisplay
    hurry: Callable[[], bool]
    cluster: LocustCluster | None = None
    collector: Collector | None = None
    redis: RedisServer | None = None
    ledger: Ledger | None = None

    def finish(self) -> tuple[Summary | None, RunOutcome]:
        """Stop everything in order and write the results; never raises. Returns the summary (if
        one could be written) and the outcome."""
        ctx, ending = self.ctx, self.ending
        now = time.monotonic()
        ctx.windows[:] = [w if w.end is not None else w.model_copy(update={"end": now}) for w in ctx.windows]
        problems: list[str] = []
        progress = self._stop_load(problems)
        self._collect(problems)
        summary, outcome = self._write(progress, problems)
        if ctx.redis_url and not ending.redis_lost:
            problems += attempt("state", lambda: ctx.set_state(status=ending.status))
        ctx.events.run_end.fire(RunEnded(ctx, ending.status, summary))
        problems += ctx.release_owned()
        target = ctx.target
        if target is not None:
            problems += attempt("target collect", lambda: target.collect(ctx.run_dir))
            problems += attempt("target", target.stop)
        if self.redis is not None:
            problems += attempt("redis", self.redis.stop)
        if self.ledger is not None:
            problems += attempt("ledger", self.ledger.end)
        for problem in problems:
            self.display.message(f"[yellow]teardown: {problem}[/yellow]")
        return summary, outcome

    def _stop_load(self, problems: list[str]) -> list[WorkerProgress]:
        """Stop the users and the Locust processes, after asking each worker how many requests it began
        (when Redis is gone, its own account is all there is)."""
        cluster, ending = self.cluster, self.ending
        progress: list[WorkerProgress] = []
        if cluster is None:
            return progress
        # Each worker's own count of what it began: exact even when Redis lost what it held (it
        # died, or restarted empty). Asked once the load is over (stopping the users is harmless
        # then), not on the first Ctrl-C: requests in flight get to finish.
        if cluster.ready and (ending.redis_lost or (not ending.interrupted and not self.hurry())):
            problems += attempt("worker report", lambda: progress.extend(cluster.report()))
        # an interrupted run lets requests in flight finish (within drain_timeout; a second Ctrl-C
        # hurries); one that failed stops its users at once
        force = (ending.status is RunStatus.PARTIAL and not ending.interrupted) or self.hurry()
        problems += attempt("locust", lambda: cluster.shutdown(force=force))
        return progress

    def _collect(self, problems: list[str]) -> None:
        """Read what is left of the stream; a collector that could not is a failure of the run."""
        collector, ending = self.collector, self.ending
        if collector is None:
            return
        failed = attempt("collector", lambda: collector.finish(drain_timeout=5.0 if self.hurry() else 30.0))
        problems += failed
        if ending.redis_lost:  # already a failure, and nothing more could be read
            return
        if failed:
            ending.failures.append(f"records may be missing: {failed[0]}")
        elif collector.rejected:
            ending.failures.append(f"{collector.rejected} unreadable stream entries set aside in rejected.jsonl")

    def _facts(self, progress: list[WorkerProgress]) -> RunFacts:
        ctx, scenario, ending = self.ctx, self.scenario, self.ending
        assert self.collector is not None
        lost = self.collector.lost_by_worker()
        for answer in progress:  # a worker's own account: all there is when Redis is gone
            lost[answer.worker] = max(0, answer.begun - self.collector.received_from(answer.worker))
        losses = account_losses(
            self.cluster.lost if self.cluster is not None else (),
            lost,
            self.collector.latest_samples(),
            ctx.started,
            time.monotonic(),
            dropped=sum(answer.dropped for answer in progress),
        )
        return RunFacts(
            run_id=ctx.run_id,
            scenario=scenario.name,
            target=ctx.target_config.label if ctx.target_config else None,
            started_wall=ctx.started_wall,
            windows=list(ctx.windows),
            slo=scenario.slo,
            selfcheck=scenario.selfcheck,
            unmeasured=self.plan.unmeasured() | {PREFLIGHT},
            extras=ctx.extras,
            checks=scenario.checks,
            soak=scenario.soak_analysis,
            interrupted=ending.interrupted,
            failures=tuple(ending.failures),
            target_down=ending.target_down,
            bad_input=ending.bad_input,
            losses=losses,
        )

    def _write_workers(self) -> None:
        """``workers.json``: every worker that joined, where it ran and the records it sent (the
        report's per-worker table reads it)."""
        if self.cluster is None:
            return
        collector = self.collector
        workers = [
            w.model_copy(update={"records": collector.received_from(w.name) if collector is not None else None})
            for w in self.cluster.workers_seen()
        ]
        write_workers(self.ctx.run_dir, workers)

    def _write(self, progress: list[WorkerProgress], problems: list[str]) -> tuple[Summary | None, RunOutcome]:
        """summary.json, summary.csv and report.html with the outcome; without a collector (the run
        ended before any traffic), a report that says why."""
        ctx, ending = self.ctx, self.ending
        problems += attempt("workers.json", self._write_workers)
        if self.collector is not None:
            try:
                summary = write_results(
                    ctx.run_dir, self._facts(progress), self.collector, ending.status, ending.reason
                )
                if summary.outcome is not None:
                    return summary, summary.outcome
            except Exception as exc:  # noqa: BLE001 - the records file is still there
                problems.append(f"results: {exc}")
                ending.failures.append(f"the results could not be written: {exc}")
        found = {
            Outcome.BAD_INPUT: [ending.bad_input] if ending.bad_input else [],
            Outcome.INTERRUPTED: [ending.interrupted] if ending.interrupted else [],
            Outcome.PARTIAL: list(ending.failures) or ["the run ended before any request was measured"],
        }
        outcome = decide(found)
        problems += attempt(
            "report", lambda: write_failure_report(ctx.run_dir / "report.html", outcome.headline, outcome)
        )
        return None, outcome
