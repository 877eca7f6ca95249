"""``finishline run``: one scenario, end to end, and everything it started torn down after.

Order of a run: run directory -> target (started, then its pre-flight check) -> Redis
(private unless ``redis_url``) -> collector -> add-ons (``run_start``) -> Locust master and workers -> phases in order -> stop users ->
workers flush and exit -> collector drains -> summary, CSV, report -> ``run_end`` ->
add-ons, target and Redis stopped. Any error or Ctrl-C jumps to "stop users" and the run
keeps every record measured so far, with the summary marked partial.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from pydantic import ValidationError

from coordinator.plan.steps import ExternalStep, LocustStep, Plan, build_plan
from coordinator.results.collector import Collector
from coordinator.results.files import write_atomic
from coordinator.results.report import write_failure_report
from coordinator.results.status import RunStatus
from coordinator.results.summary import PhaseWindow, Summary
from coordinator.results.writer import RunFacts, write_results
from coordinator.run.cluster import LocustCluster
from coordinator.run.context import RunContext
from coordinator.run.environment import environment_info
from coordinator.run.events import PhaseEnded, PhaseStarted, RecordsCollected, RunEnded, RunStarted
from coordinator.run.extensions import attach_all
from coordinator.run.phases import run_external
from coordinator.run.preflight import PREFLIGHT, preflight
from coordinator.run.progress import ProgressDisplay
from coordinator.run.targets import lifecycle_for, loopback_env, target_config
from coordinator.scenario.models import Scenario
from coordinator.services.ports import free_port
from coordinator.services.redis_server import RedisServer
from loadgen.config import WorkerConfig
from loadgen.errors import UserError
from loadgen.records import RequestRecord


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    status: RunStatus  # complete or partial
    summary: Summary | None
    reason: str | None = None


def new_run_id(name: str) -> str:
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"


class _Interrupted(Exception):
    """SIGINT/SIGTERM arrived: stop the phases, keep what was measured."""


class Run:
    """One run of a scenario; :meth:`execute` always tears down and always writes results."""

    def __init__(
        self,
        scenario: Scenario,
        scenario_path: Path,
        *,
        web: bool = False,
        live: bool | None = None,
        run_id: str | None = None,
    ) -> None:
        self.scenario = scenario
        self.web = web
        run_id = run_id or new_run_id(scenario.name)
        run_dir = Path(scenario.output_dir) / run_id
        self.ctx = RunContext(run_id=run_id, scenario=scenario, scenario_path=scenario_path, run_dir=run_dir)
        self.plan: Plan = build_plan(scenario)
        self.display = ProgressDisplay(f"finishline {scenario.name} ({run_id})", live=live)
        self.redis: RedisServer | None = None
        self.collector: Collector | None = None
        self.cluster: LocustCluster | None = None
        self._signals: dict[int, Any] = {}
        self._interrupts = 0
        self._tearing_down = False
        self._private: Path | None = None
        self._preflight: RequestRecord | None = None  # the pre-flight request's record, written once Redis runs

    # -- signals -------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._interrupts += 1
        self.ctx.stop_requested.set()
        if self._interrupts == 1 and not self._tearing_down:
            raise _Interrupted(signal.Signals(signum).name)
        # during teardown (or a second Ctrl-C) only the flag is set: teardown must finish

    def _install_signals(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._signals[sig] = signal.signal(sig, self._on_signal)

    def _restore_signals(self) -> None:
        for sig, handler in self._signals.items():
            signal.signal(sig, handler)

    # -- the run -------------------------------------------------------------------------

    def execute(self) -> RunResult:
        ctx = self.ctx
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        (ctx.run_dir / "scenario.yaml").write_text(yaml.safe_dump(self.scenario.redacted(), sort_keys=False))
        (ctx.run_dir / "plan.json").write_text(self.plan.model_dump_json(indent=2))
        status, reason = RunStatus.COMPLETE, None
        user_error: Exception | None = None
        summary: Summary | None = None
        self._install_signals()
        try:
            with self.display:
                try:
                    try:
                        self._setup()
                        self._drive()
                        self._drain()
                        if ctx.stop_requested.is_set() and not self.web:
                            status, reason = RunStatus.PARTIAL, "interrupted"
                    except _Interrupted as exc:
                        if not self.web:
                            status, reason = RunStatus.PARTIAL, f"interrupted ({exc})"
                    except (UserError, ValidationError) as exc:  # one line for the user, exit 2
                        status, reason, user_error = RunStatus.PARTIAL, str(exc), exc
                    except Exception as exc:  # noqa: BLE001 - a failed run still keeps what it measured
                        status, reason = RunStatus.PARTIAL, f"{type(exc).__name__}: {exc}"
                        self._log_error()
                    except BaseException as exc:
                        status, reason = RunStatus.PARTIAL, type(exc).__name__
                        raise
                finally:
                    self._tearing_down = True  # from here on a signal only sets the stop flag
                    summary, status, reason = self._teardown(status, reason)
        except _Interrupted:  # arrived between catching an error and starting teardown
            status, reason = RunStatus.PARTIAL, reason or "interrupted"
        finally:
            self._restore_signals()
        if user_error is not None:
            raise user_error
        return RunResult(ctx.run_id, ctx.run_dir, status, summary, reason)

    def _log_error(self) -> None:
        """The traceback goes to the run's log, the one-line reason to the user."""
        log = self.ctx.run_dir / "logs" / "coordinator.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("a") as fh:
            traceback.print_exc(file=fh)

    def _setup(self) -> None:
        ctx, scenario = self.ctx, self.scenario
        (ctx.run_dir / "environment.json").write_text(environment_info(scenario, ctx.run_id))
        ctx.target = lifecycle_for(scenario.target, ctx.run_id, ctx.run_dir)
        self.display.message(f"starting target {scenario.target.kind} ...")
        base_url = ctx.target.start(ctx.run_dir)
        ctx.target_config = target_config(ctx.target, scenario.target, base_url)
        if scenario.target.preflight:  # before anything else starts: a wrong URL is one line, exit 2
            self.display.message("checking the target ...")
            api = "chat" if any(w.api == "chat" for w in scenario.workloads) else "completions"
            identity, self._preflight = preflight(
                ctx.target_config, ctx.run_id, api, check_model=scenario.target.model is not None
            )
            write_atomic(ctx.run_dir / "target.json", identity.model_dump_json(indent=2))
        if scenario.redis_url:
            ctx.redis_url = scenario.redis_url
        else:
            self.redis = RedisServer().start()
            ctx.redis_url = self.redis.url
        config = WorkerConfig(
            run_id=ctx.run_id,
            redis_url=ctx.redis_url,
            target=ctx.target_config,
            workloads=scenario.workloads,
            retry=scenario.retry,
            seed=scenario.seed,
        )
        # outside the run directory: headers may carry credentials; removed at teardown
        self._private = Path(tempfile.mkdtemp(prefix="finishline-run-"))
        config_path = self._private / "worker_config.json"
        config_path.write_text(config.model_dump_json(indent=2))
        config_path.chmod(0o600)
        self.collector = Collector(ctx.redis_url, ctx.run_id, ctx.run_dir, on_batch=self._on_batch).start()
        if self._preflight is not None:
            ctx.windows.append(PhaseWindow(name=PREFLIGHT, start=self._preflight.scheduled, end=self._preflight.end))
            ctx.write_records([self._preflight])
        ctx.set_state(
            status=RunStatus.RUNNING, phase="starting", scenario=scenario.name, target=ctx.target_config.label
        )
        attach_all(ctx)
        ctx.events.run_start.fire(RunStarted(ctx))
        steps = self.plan.locust_steps()
        if steps:
            self.cluster = LocustCluster(
                ctx.run_dir,
                config_path,
                scenario.workers,
                loopback_env(),
                web_port=free_port() if self.web else None,
                first_users=(self._web_step() if self.web else steps[0]).users,
                stop_timeout=scenario.drain_timeout,
                host=ctx.target_config.base_url,
            )
            self.display.message(f"starting Locust master and {scenario.workers} workers ...")
            self.cluster.start()
            if self.web:
                self.display.message(f"Locust web UI: http://127.0.0.1:{self.cluster.web_port}")

    def _on_batch(self, records: list[Any]) -> None:
        self.display.model.add(records)
        self.ctx.events.records.fire(RecordsCollected(self.ctx, records))

    def _drive(self) -> None:
        if self.web:
            self._interactive()
            return
        for step in self.plan.steps:
            if self.ctx.stop_requested.is_set():
                break
            if isinstance(step, ExternalStep):
                self._external(step)
            else:
                self._locust(step)

    def _begin(self, step: LocustStep | ExternalStep, started: float) -> None:
        ctx = self.ctx
        ctx.current_phase = step.name
        ctx.windows.append(PhaseWindow(name=step.name, start=started))
        ctx.set_state(phase=step.name)
        self.display.phase_started(step.name, started)
        ctx.events.phase_start.fire(PhaseStarted(ctx, step, started))

    def _end(self, step: LocustStep | ExternalStep) -> None:
        ctx = self.ctx
        ended = time.monotonic()
        window = ctx.windows[-1]
        ctx.windows[-1] = window.model_copy(update={"end": ended})
        self.display.phase_ended(step.name)
        ctx.events.phase_end.fire(PhaseEnded(ctx, step, window.start, ended))

    def _external(self, step: ExternalStep) -> None:
        self._begin(step, time.monotonic())
        try:
            run_external(self.ctx, step)
        finally:
            self._end(step)

    def _locust(self, step: LocustStep) -> None:
        assert self.cluster is not None and self.collector is not None
        started = self.cluster.phase(step)
        self._begin(step, started)
        try:
            while not self.ctx.stop_requested.is_set():
                now = time.monotonic()
                if step.duration is not None and now - started >= step.duration:
                    break
                if step.requests is not None and self.collector.phase_count(step.name) >= step.requests:
                    break
                self._watch()
                time.sleep(0.1)
        finally:
            self._end(step)

    def _watch(self) -> None:
        """While load runs: a process or the collector that died ends the run; the display follows."""
        assert self.cluster is not None and self.collector is not None
        self.cluster.check()
        if self.collector.error is not None:
            raise RuntimeError(f"collector failed: {self.collector.error}")
        self.display.update(self.collector.latest_samples())

    def _drain(self) -> None:
        """Let what was scheduled finish (up to ``drain_timeout``) instead of cancelling it.

        The master's drain: the open-loop dispatcher stops scheduling, closed users finish the
        unit in hand and start no new one; units in flight finish. Records keep the last
        phase's name. Done when every worker's latest sample, taken after the drain began,
        shows nothing in flight.
        """
        if self.web or self.cluster is None or self.ctx.stop_requested.is_set():
            return
        self.cluster.drain()
        asked = time.monotonic()
        deadline = asked + self.scenario.drain_timeout
        assert self.collector is not None
        while time.monotonic() < deadline and not self.ctx.stop_requested.is_set():
            samples = self.collector.latest_samples()
            fresh = [s for s in samples.values() if s.time > asked]
            if len(fresh) >= self.scenario.workers and all(s.in_flight == 0 for s in fresh):
                break
            self.display.update(samples)
            time.sleep(0.1)

    def _web_step(self) -> LocustStep:
        """The phase that labels ``--web`` traffic: what the user starts from the UI is what they
        want measured, so a leading warm-up does not label it (it would be left out of every total)."""
        steps = self.plan.locust_steps()
        first = next((s for s in steps if s.measured), None)
        if first is None:  # only warm-ups: measure the UI's traffic under a phase of its own
            web = steps[0].command.model_copy(update={"name": "web"})
            first = steps[0].model_copy(update={"name": "web", "command": web, "measured": True})
        return first

    def _interactive(self) -> None:
        """``--web``: announce the first measured phase, then the user drives Locust's UI until Ctrl-C."""
        assert self.cluster is not None
        first = self._web_step()
        self.cluster.announce(first)
        self._begin(first, time.monotonic())
        try:
            while not self.ctx.stop_requested.is_set():
                self._watch()
                time.sleep(0.2)
        finally:
            self._end(first)

    # -- teardown ------------------------------------------------------------------------

    def _facts(self) -> RunFacts:
        ctx, scenario = self.ctx, self.scenario
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
        )

    def _teardown(self, status: RunStatus, reason: str | None) -> tuple[Summary | None, RunStatus, str | None]:
        """Stop everything in order; never raises; returns the summary if one was written, and the
        status, made partial when the collector could not take every record."""
        ctx = self.ctx
        self._tearing_down = True
        problems: list[str] = []
        summary = None
        if ctx.windows and ctx.windows[-1].end is None:
            w = ctx.windows[-1]
            ctx.windows[-1] = w.model_copy(update={"end": time.monotonic()})
        problems += _attempt(
            "locust", lambda: self.cluster and self.cluster.shutdown(force=status == RunStatus.PARTIAL)
        )
        lost = _attempt("collector", lambda: self.collector and self.collector.finish())
        problems += lost
        if self.collector is not None and status != RunStatus.PARTIAL:  # results short of what was measured
            if lost:
                status, reason = RunStatus.PARTIAL, f"records may be missing: {lost[0]}"
            elif self.collector.rejected:
                status, reason = (
                    RunStatus.PARTIAL,
                    (f"{self.collector.rejected} unreadable stream entries set aside in rejected.jsonl"),
                )
        if self.collector is not None:
            try:
                summary = write_results(ctx.run_dir, self._facts(), self.collector, status, reason)
            except Exception as exc:  # noqa: BLE001 - the records file is still there
                problems.append(f"results: {exc}")
        elif reason is not None:  # ended before any request was measured: the report says why
            problems += _attempt("report", lambda: write_failure_report(ctx.run_dir / "report.html", reason))
        problems += _attempt("state", lambda: ctx.redis_url and ctx.set_state(status=status))
        ctx.events.run_end.fire(RunEnded(ctx, status, summary))
        problems += ctx.release_owned()
        if ctx.target is not None:
            problems += _attempt("target collect", lambda: ctx.target.collect(ctx.run_dir))
            problems += _attempt("target", ctx.target.stop)
        if self.redis is not None:
            problems += _attempt("redis", self.redis.stop)
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
        for problem in problems:
            self.display.message(f"[yellow]teardown: {problem}[/yellow]")
        return summary, status, reason


def _attempt(name: str, action: Any) -> list[str]:
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - teardown goes on
        return [f"{name}: {type(exc).__name__}: {exc}"]
    return []


def run_scenario(scenario: Scenario, scenario_path: Path, **kwargs: Any) -> RunResult:
    return Run(scenario, scenario_path, **kwargs).execute()
