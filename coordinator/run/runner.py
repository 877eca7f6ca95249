"""``finishline run``: one scenario, end to end, and everything it started torn down after.

Order of a run: run directory -> target (started, then its pre-flight check) -> Redis
(private unless ``redis_url``) -> collector -> add-ons (``run_start``) -> Locust master and
workers -> phases in order -> drain -> workers flush and exit -> collector drains -> summary,
CSV, report -> ``run_end`` -> add-ons, target and Redis stopped.

What can go wrong on the way ends the run early but never costs what was measured: Ctrl-C or
SIGTERM (interrupted; a second one stops faster), the target failing every request (target
down), the run's Redis exiting, an error. A Locust worker that dies does not end it: the
others go on and the loss is counted. Every way out writes the summary and the report, whose
outcome decides the exit code (``coordinator.results.outcome``).
"""

from __future__ import annotations

import signal
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import redis
import yaml
from pydantic import ValidationError

from coordinator.plan.steps import ExternalStep, LocustStep, Plan, build_plan
from coordinator.results.collector import Collector
from coordinator.results.files import write_atomic
from coordinator.results.identity import IDENTITY_FILE
from coordinator.results.outcome import EXIT_CODES, Outcome, RunOutcome
from coordinator.results.status import RunStatus
from coordinator.results.summary import PhaseWindow, Summary
from coordinator.run.cluster import LocustCluster
from coordinator.run.context import RunContext
from coordinator.run.environment import environment_info
from coordinator.run.events import PhaseEnded, PhaseStarted, RecordsCollected, RunStarted
from coordinator.run.extensions import attach_all
from coordinator.run.health import DownDetector, RedisLost, TargetDown, redis_exit
from coordinator.run.ownership import Ledger
from coordinator.run.phases import run_external
from coordinator.run.preflight import PREFLIGHT, preflight
from coordinator.run.progress import ProgressDisplay
from coordinator.run.signals import StopSignals
from coordinator.run.targets import SimulatorProcess, lifecycle_for, loopback_env, target_config
from coordinator.run.teardown import Ending, Teardown
from coordinator.run.web import WebSession
from coordinator.scenario.models import Scenario
from coordinator.services.ports import free_port
from coordinator.services.redis_server import RedisServer, new_password, redact
from loadgen.config import WorkerConfig
from loadgen.errors import ServiceError, UserError
from loadgen.records import RequestRecord


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    status: RunStatus  # complete or partial
    summary: Summary | None
    reason: str | None = None
    outcome: RunOutcome | None = None  # decides the exit code; None only for bad input (exit 2)
    signalled: bool = False  # SIGINT or SIGTERM arrived, even during teardown (a matrix starts no more runs)

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code if self.outcome is not None else int(EXIT_CODES[Outcome.BAD_INPUT])


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
        run_dir: Path | None = None,
    ) -> None:
        """``run_dir``: where its results go (default ``output_dir/run_id``; a matrix's variants go
        under the matrix's directory)."""
        self.scenario = scenario
        self.web = web
        run_id = run_id or new_run_id(scenario.name)
        run_dir = run_dir or Path(scenario.output_dir) / run_id
        self.ctx = RunContext(run_id=run_id, scenario=scenario, scenario_path=scenario_path, run_dir=run_dir)
        self.plan: Plan = build_plan(scenario)
        self.display = ProgressDisplay(f"finishline {scenario.name} ({run_id})", live=live)
        self.ctx.events.step_progress.add_listener(self.display.step_progress)
        self.redis: RedisServer | None = None
        self.collector: Collector | None = None
        self.cluster: LocustCluster | None = None
        self._interrupts = 0
        self._tearing_down = False
        self._ending = Ending()
        self.ledger: Ledger | None = None
        self._noted = 0.0  # when the ledger last looked for new child processes
        self._down = DownDetector(scenario.checks.abort_when_down_s)
        self._preflight: RequestRecord | None = None  # the pre-flight request's record, written once Redis runs
        self.web_session = WebSession(self) if web else None  # --web: the UI's Start and Stop drive the plan

    # -- signals -------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """The first SIGINT or SIGTERM stops the phases (users finish within the drain timeout);
        a second one makes the teardown hurry (users stopped at once); results are written either way."""
        self._interrupts += 1
        self.ctx.stop_requested.set()
        if self._interrupts == 1 and not self._tearing_down:
            raise _Interrupted(signal.Signals(signum).name)
        # during teardown (or a second Ctrl-C) nothing is raised: teardown must finish. A second
        # signal makes it hurry: the workers stop their users now (records of requests in flight
        # say cancelled) and flush what they have.
        if self._hurry and self.cluster is not None:
            self.cluster.hurry()

    @property
    def _hurry(self) -> bool:
        return self._interrupts >= 2

    # -- the run -------------------------------------------------------------------------

    def execute(self) -> RunResult:
        ctx, ending = self.ctx, self._ending
        try:
            ctx.run_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(ctx.run_dir / "scenario.yaml", yaml.safe_dump(self.scenario.redacted(), sort_keys=False))
            write_atomic(ctx.run_dir / "plan.json", self.plan.model_dump_json(indent=2))
            self.ledger = Ledger.begin(ctx.run_id, ctx.run_dir)
        except OSError as exc:  # nothing started yet: bad output_dir, exit 2
            raise UserError(
                f"output_dir: cannot write {exc.filename or ctx.run_dir}: {exc.strerror or exc}; "
                "free space or choose another output_dir"
            ) from None
        user_error: Exception | None = None
        summary: Summary | None = None
        outcome: RunOutcome | None = None
        try:
            with StopSignals(self._on_signal), self.display:
                try:
                    try:
                        self._setup()
                        self._drive()
                        self._drain()
                        if ctx.stop_requested.is_set() and not ending.interrupted and self._plan_cut_short:
                            ending.interrupted = "interrupted"
                    except _Interrupted as exc:
                        if self._plan_cut_short:
                            ending.interrupted = f"interrupted ({exc})"
                    except TargetDown as exc:
                        ending.target_down = str(exc)
                    except RedisLost as exc:
                        ending.redis_lost = True
                        ending.failures.append(str(exc))
                    except (UserError, ValidationError) as exc:  # one line for the user, exit 2
                        ending.bad_input = str(exc)
                        user_error = exc
                    except Exception as exc:  # noqa: BLE001 - a failed run still keeps what it measured
                        ending.failures.append(f"{type(exc).__name__}: {exc}")
                        self._log_error()
                    except BaseException as exc:
                        ending.failures.append(type(exc).__name__)
                        raise
                finally:
                    self._tearing_down = True  # from here on a signal only sets the stop flag
                    summary, outcome = self._teardown()
        except _Interrupted:  # arrived between catching an error and starting teardown
            ending.interrupted = ending.interrupted or "interrupted"
        if user_error is not None:
            raise user_error
        return RunResult(
            ctx.run_id, ctx.run_dir, ending.status, summary, ending.reason, outcome, signalled=self._interrupts > 0
        )

    @property
    def _plan_cut_short(self) -> bool:
        """Whether a stop now cuts the plan short; with --web, not when the user set the load (coordinator.run.web)."""
        return self.web_session is None or self.web_session.plan_running

    def _log_error(self) -> None:
        """The traceback goes to the run's log, the one-line reason to the user."""
        log = self.ctx.run_dir / "logs" / "coordinator.log"
        try:
            log.parent.mkdir(exist_ok=True)
            with log.open("a") as fh:
                traceback.print_exc(file=fh)
        except OSError:
            pass  # the run directory cannot be written: the reason still reaches the console

    def _setup(self) -> None:
        ctx, scenario = self.ctx, self.scenario
        write_atomic(ctx.run_dir / "environment.json", environment_info(scenario, ctx.run_id))
        sources = scenario.worker_sources
        ctx.target = lifecycle_for(scenario.target, ctx.run_id, ctx.run_dir)
        if isinstance(ctx.target, SimulatorProcess):  # workers elsewhere must reach the run's simulator
            ctx.target.listen = sources.bind_host
        self.display.message(f"starting target {scenario.target.kind} ...")
        base_url = ctx.target.start(ctx.run_dir)
        ctx.target_config = target_config(ctx.target, scenario.target, base_url)
        if scenario.target.preflight:  # before anything else starts: a wrong URL is one line, exit 2
            self.display.message("checking the target ...")
            api = "chat" if any(w.api == "chat" for w in scenario.workloads) else "completions"
            identity, self._preflight = preflight(
                ctx.target_config, ctx.run_id, api, check_model=scenario.target.model is not None
            )
            write_atomic(ctx.run_dir / IDENTITY_FILE, identity.model_dump_json(indent=2))
        if scenario.redis_url:
            ctx.redis_url = scenario.redis_url
        else:
            # with workers elsewhere it listens where they reach it, and only for the password they are sent
            password = new_password() if sources.outside else None
            self.redis = RedisServer(bind=sources.bind_host, password=password).start()
            ctx.redis_url = self.redis.url
        self._note(redis_url=redact(ctx.redis_url), private_redis=self.redis is not None)
        config = WorkerConfig(
            run_id=ctx.run_id,
            redis_url=ctx.redis_url,
            target=ctx.target_config,
            workloads=scenario.workloads,
            retry=scenario.retry,
            seed=scenario.seed,
        )
        # workers on other machines: their clocks' offsets, learnt as they join (coordinator.results.clocks)
        self._clock_offsets: dict[str, float] = {}
        self.collector = Collector(
            ctx.redis_url, ctx.run_id, ctx.run_dir, on_batch=self._on_batch, clock_offsets=self._clock_offsets
        ).start()
        if self._preflight is not None:
            ctx.windows.append(PhaseWindow(name=PREFLIGHT, start=self._preflight.scheduled, end=self._preflight.end))
            ctx.write_records([self._preflight])
        ctx.set_state(
            status=RunStatus.RUNNING, phase="starting", scenario=scenario.name, target=ctx.target_config.label
        )
        attach_all(ctx)
        ctx.events.run_start.fire(RunStarted(ctx))
        steps = self.plan.locust_steps()
        if steps or self.plan.drives_locust():
            self.cluster = LocustCluster(
                ctx.run_dir,
                config.model_dump_json(),
                sources,
                loopback_env(sources.bind_host),
                web_port=free_port() if self.web else None,
                first_users=self.web_session.prefill.users if self.web_session else steps[0].users if steps else 1,
                first_spawn_rate=self.web_session.prefill.spawn_rate if self.web_session else None,
                server_figures=self.web_session.scrapes_server if self.web_session else False,
                stop_timeout=scenario.drain_timeout,
                host=ctx.target_config.base_url,
                run_id=ctx.run_id,
                pass_env=(ctx.target_config.api_key_env,) if ctx.target_config.api_key_env else (),
                clock_offsets=self._clock_offsets,
            )
            self.display.message(f"starting Locust master and {scenario.worker_count} workers ...")
            self.cluster.start()
            self._note()
            ctx.locust = self
            if self.web:
                self.display.message(f"Locust web UI: http://127.0.0.1:{self.cluster.web_port}")

    def _note(self, **fields: Any) -> None:
        """Bring the ledger up to date: what the run started so far, its phases, and ``fields``."""
        if self.ledger is None:
            return
        for name, value in fields.items():
            setattr(self.ledger, name, value)
        self.ledger.windows = list(self.ctx.windows)
        self._noted = time.monotonic()
        try:
            self.ledger.note_children()
            self.ledger.save()
        except OSError as exc:  # a full disk must not stop the run; the collector says so if it matters
            self.display.message(f"[yellow]cannot update {exc.filename or 'the ledger'}: {exc.strerror}[/yellow]")

    def _on_batch(self, records: list[Any]) -> None:
        self.display.model.add(records)
        self._down.feed(records)
        self.ctx.events.records.fire(RecordsCollected(self.ctx, records))

    def _drive(self) -> None:
        if self.web_session is not None:
            self._ending.interrupted = self.web_session.drive()
            return
        for step in self.plan.steps:
            if self.ctx.stop_requested.is_set():
                break
            self.run_step(step)

    def run_step(self, step: LocustStep | ExternalStep) -> None:
        """One step of the plan, to its end."""
        if isinstance(step, ExternalStep):
            self._external(step)
        else:
            self._locust(step)

    def _begin(self, step: LocustStep | ExternalStep, started: float) -> None:
        ctx = self.ctx
        ctx.current_phase = step.name
        ctx.windows.append(PhaseWindow(name=step.name, start=started))
        self._note()
        ctx.set_state(phase=step.name)
        self.display.phase_started(step.name, started, *self.plan.planned_time(step))
        ctx.events.phase_start.fire(PhaseStarted(ctx, step, started))

    def _end(self, step: LocustStep | ExternalStep) -> None:
        ctx = self.ctx
        ended = time.monotonic()
        # this step's window: the last, unless the step ran steps of its own (a sweep's levels)
        i = max(j for j, w in enumerate(ctx.windows) if w.name == step.name)
        window = ctx.windows[i]
        ctx.windows[i] = window.model_copy(update={"end": ended})
        self._note()
        self.display.phase_ended(step.name)
        ctx.events.phase_end.fire(PhaseEnded(ctx, step, window.start, ended))

    def _external(self, step: ExternalStep) -> None:
        self._begin(step, time.monotonic())
        try:
            run_external(self.ctx, step)
        finally:
            self._end(step)

    def _locust(self, step: LocustStep) -> PhaseWindow:
        """Start a Locust step and wait for its end (duration, requests, or a stop); its window."""
        assert self.cluster is not None and self.collector is not None
        started = self.cluster.phase(step)
        self._begin(step, started)
        try:
            while not self.ctx.stop_requested.is_set():
                now = time.monotonic()
                if step.duration is not None and now - started >= step.duration:
                    break
                if step.requests is not None and self._requests_done(step, started):
                    break
                if self.web_session is not None and self.web_session.interrupts_step():
                    break
                self.watch()
                time.sleep(0.1)
        finally:
            self._end(step)
        return self.ctx.windows[-1]

    def _requests_done(self, step: LocustStep, started: float) -> bool:
        """Whether a ``requests: N`` step has its N records, or, when a worker was lost during it (its
        share with it), every worker left has spent its share and has nothing in flight."""
        assert self.cluster is not None and self.collector is not None and step.requests is not None
        if self.collector.phase_count(step.name) >= step.requests:
            return True
        if not any(loss.lost_at >= started for loss in self.cluster.lost):
            return False
        recent = time.monotonic() - 3.0  # a lost worker's last sample is older
        samples = [s for s in self.collector.latest_samples().values() if s.time > max(started, recent)]
        return bool(samples) and all(s.phase == step.name and s.budget_left == 0 and s.in_flight == 0 for s in samples)

    def run(self, step: LocustStep) -> PhaseWindow:
        """The run as a :class:`~coordinator.run.context.LocustDriver` (a sweep's levels)."""
        return self._locust(step)

    def watch(self) -> None:
        """While load runs: a dead master, Redis or collector ends the run, and so does a target that
        fails every request; a dead worker is counted and the others go on. The display follows."""
        assert self.cluster is not None and self.collector is not None
        gone = redis_exit(self.redis.process if self.redis is not None else None)
        if gone is not None:
            raise RedisLost(gone)
        self.cluster.check()
        error = self.collector.error
        if isinstance(error, OSError) and not isinstance(error, redis.RedisError):  # the run directory
            where = f" {error.filename}" if error.filename else f" in {self.ctx.run_dir}"
            raise ServiceError(
                f"cannot write{where}: {error.strerror or error}; free space or choose another output_dir"
            )
        if error is not None:
            raise RedisLost(f"the collector lost Redis at {redact(self.ctx.redis_url)}: {error}")
        down = self._down.down()
        if down is not None:
            raise TargetDown(down)
        if time.monotonic() - self._noted > 2.0:  # a restarted bridge, say
            self._note()
        self.display.update(self.collector.latest_samples())
        if self.web_session is not None:
            self.web_session.tick()

    def _drain(self) -> None:
        """Let what was scheduled finish (up to ``drain_timeout``) instead of cancelling it.

        The master's drain: the open-loop dispatcher stops scheduling, closed users finish the
        unit in hand and start no new one; units in flight finish. Records keep the last
        phase's name. Done when every worker's latest sample, taken after the drain began,
        shows nothing in flight.
        """
        if self.cluster is None or self.ctx.stop_requested.is_set():
            return
        self.cluster.drain()
        asked = time.monotonic()
        deadline = asked + self.scenario.drain_timeout
        assert self.collector is not None
        while time.monotonic() < deadline and not self.ctx.stop_requested.is_set():
            samples = self.collector.latest_samples()
            fresh = [s for s in samples.values() if s.time > asked]
            live = self.scenario.worker_count - len(self.cluster.lost)  # a lost worker sends no samples
            if len(fresh) >= live and all(s.in_flight == 0 for s in fresh):
                break
            self.display.update(samples)
            time.sleep(0.1)

    # -- teardown ------------------------------------------------------------------------

    def _teardown(self) -> tuple[Summary | None, RunOutcome]:
        """Stop everything in order and write the results (:class:`~coordinator.run.teardown.Teardown`); never raises."""
        self._tearing_down = True
        teardown = Teardown(
            self.ctx,
            self.scenario,
            self.plan,
            self._ending,
            self.display,
            hurry=lambda: self._hurry,
            cluster=self.cluster,
            collector=self.collector,
            redis=self.redis,
            ledger=self.ledger,
        )
        return teardown.finish()


def run_scenario(scenario: Scenario, scenario_path: Path, **kwargs: Any) -> RunResult:
    return Run(scenario, scenario_path, **kwargs).execute()
