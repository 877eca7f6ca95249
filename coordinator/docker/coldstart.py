"""The cold-start phase: N fresh containers, each timed from create to the first token.

Per start: create -> process started -> port open -> ready (health 200) -> first token of
the first request; then the same request again, warm, so the cold penalty (cold TTFT vs
warm TTFT) is measured on identical work. While the model loads, the request is sent
every ``probe_interval_s`` and each refusal (llama-server: 503 ``Loading model``) is kept
as a record — counted, not hidden. Requests go through loadgen's measuring client, so they
are ordinary `RequestRecord`s of the phase.

The last container stays up: the phases after this one measure it warm.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from coordinator.docker.lifecycle import DockerTarget, TargetFailed
from coordinator.docker.spec import ColdStartPhase
from coordinator.plan.steps import ExternalStep
from coordinator.results.coldstart import RESULT_FILE, ColdStartResult, StartResult
from coordinator.results.files import write_atomic
from coordinator.run.context import RunContext
from coordinator.run.events import StepProgress
from loadgen.client import EndpointClient
from loadgen.errors import UserError
from loadgen.metrics import ttft
from loadgen.records import RequestRecord
from loadgen.spec import SamplingParams
from loadgen.telemetry import worker_id

Emit = Callable[[RequestRecord], object]
FRESH = {"Connection": "close"}


def run_phase(ctx: RunContext, step: ExternalStep) -> None:
    """The registered runner of ``cold_start`` phases: records go into the run's stream."""
    phase = ColdStartPhase.model_validate(step.spec)
    target = ctx.target
    if not isinstance(target, DockerTarget):
        raise UserError(f"phases: {step.name}: cold_start needs a target of kind docker")
    runner = ColdStartRunner(phase, target, ctx.run_id, emit=lambda rec: ctx.write_records([rec]), model=target.model)

    def started(done: int, start: StartResult, left_s: float) -> None:
        ready, first = start.steps.get("to_ready"), start.steps.get("to_first_token")
        if start.verdict is not None:
            what = f"failed ({start.verdict})"
        else:
            what = "ready" + ("" if ready is None else f" after {ready:.1f} s")
            what += "" if first is None else f", first token after {first:.1f} s"
        line = f"cold start {done} of {phase.starts}: {what}"
        ctx.events.step_progress.fire(StepProgress(ctx, step.name, done, phase.starts, line, left_s))

    ctx.extras[step.name] = runner.run(started).model_dump(mode="json")


class ColdStartRunner:
    """Runs one `ColdStartPhase` against a `DockerTarget`, handing every record to ``emit``."""

    def __init__(self, phase: ColdStartPhase, target: DockerTarget, run_id: str, emit: Emit, model: str | None = None):
        self.phase = phase
        self.target = target
        self.run_id = run_id
        self.emit = emit
        self.config = target.target_config(model)
        self.worker = worker_id()

    def _record(self, client: EndpointClient, body: bytes, workload: str, number: int) -> RequestRecord:
        # A fresh connection per request: a first request is a new client's, and llama-server
        # closes a connection after each streamed reply although it announces keep-alive.
        result = client.send("chat", body, stream=True, timeout=self.phase.request_timeout_s, headers=FRESH)
        record = RequestRecord.of_attempts(
            [result.attempt],
            run_id=self.run_id,
            worker=self.worker,
            phase=self.phase.name,
            workload=workload,
            api="chat",
            target=self.target.spec.name,
            session_id=f"start-{number}",
            step=str(number),
        )
        self.emit(record)
        return record

    def run(self, progress: Callable[[int, StartResult, float], None] | None = None) -> ColdStartResult:
        """All starts, ``progress`` told after each (with the time the others would take at the
        mean so far). A failed start (OOM, exit, timeout) is saved with its verdict, then raised
        as `TargetFailed`: the run ends partial, and its report shows the verdict."""
        result = ColdStartResult(phase=self.phase.name)
        began = time.monotonic()
        for number in range(1, self.phase.starts + 1):
            start = self._one(number)
            result.starts.append(start)
            if progress is not None:
                progress(number, start, (time.monotonic() - began) / number * (self.phase.starts - number))
            if start.verdict is not None:
                self.write(result)
                raise TargetFailed(start.verdict, start.message or start.verdict)
        self.write(result)
        return result

    def _one(self, number: int) -> StartResult:
        client = EndpointClient(self.config, max_connections=4)
        body = client.body(
            "chat",
            True,
            [{"role": "user", "content": self.phase.prompt}],
            self.phase.max_tokens,
            SamplingParams(temperature=0.0, seed=number),
        )
        start = StartResult(number=number)
        last_probe = 0.0

        def probe() -> None:
            # Called by the target between health polls once the port is open.
            nonlocal last_probe
            if not self.phase.probe_while_loading or time.monotonic() - last_probe < self.phase.probe_interval_s:
                return
            last_probe = time.monotonic()
            record = self._record(client, body, "loading_probe", number)
            if not record.ok:
                start.refused_while_loading += 1
                key = (record.final.error_detail or record.outcome)[:120]
                start.refusals[key] = start.refusals.get(key, 0) + 1

        try:
            timings = self.target.start_container(while_loading=probe)
            first = self._record(client, body, "first_request", number)
            start.steps = dict(timings.steps())
            start.cold_ttft = ttft(first.final)
            if first.final.first_token is not None and timings.ready is not None:
                start.steps["first_token"] = first.final.first_token - timings.ready
                start.steps["to_first_token"] = first.final.first_token - timings.begin
            for _ in range(self.phase.warm_requests):
                warm = ttft(self._record(client, body, "warm_request", number).final)
                if warm is not None:
                    start.warm_ttft.append(warm)
        except TargetFailed as exc:
            start.verdict, start.message = exc.verdict, str(exc)
            if self.target.timings is not None:
                start.steps = dict(self.target.timings.steps())
        finally:
            client.close()
        return start

    def write(self, result: ColdStartResult) -> Path:
        path = self.target.run_dir / RESULT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, result.model_dump_json(indent=2))
        return path
