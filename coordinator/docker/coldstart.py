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

import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from coordinator.docker.lifecycle import DockerTarget, TargetFailed
from coordinator.docker.spec import ColdStartPhase
from loadgen.client import EndpointClient
from loadgen.metrics import ttft
from loadgen.records import RequestRecord
from loadgen.spec import SamplingParams
from loadgen.telemetry import worker_id

RESULT_FILE = "cold_start.json"
STEPS: tuple[str, ...] = ("create", "start", "port_open", "ready", "first_token", "to_ready", "to_first_token")

Emit = Callable[[RequestRecord], None]
FRESH = {"Connection": "close"}


@dataclass
class StartResult:
    """One cold start: its step durations (s), TTFTs, and how many requests were refused while loading."""

    number: int
    steps: dict[str, float | None]
    cold_ttft: float | None = None
    warm_ttft: list[float] = field(default_factory=list)
    refused_while_loading: int = 0
    refusals: dict[str, int] = field(default_factory=dict)  # status/error detail -> count
    verdict: str | None = None  # oom / exited / timeout when the start failed
    message: str | None = None


@dataclass
class ColdStartResult:
    phase: str
    starts: list[StartResult]

    @property
    def verdict(self) -> str | None:
        return next((s.verdict for s in self.starts if s.verdict), None)

    def step_values(self, step: str) -> list[float]:
        return [v for s in self.starts if (v := s.steps.get(step)) is not None]

    def to_dict(self) -> dict[str, Any]:
        cold = [s.cold_ttft for s in self.starts if s.cold_ttft is not None]
        warm = [w for s in self.starts for w in s.warm_ttft]
        return {
            "phase": self.phase,
            "verdict": self.verdict,
            "starts": [asdict(s) for s in self.starts],
            "steps": {name: self.step_values(name) for name in STEPS},
            "cold_ttft": cold,
            "warm_ttft": warm,
            "cold_penalty": (statistics.median(cold) - statistics.median(warm)) if cold and warm else None,
            "refused_while_loading": sum(s.refused_while_loading for s in self.starts),
        }


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
        wall = time.time()
        # A fresh connection per request: a first request is a new client's, and llama-server
        # closes a connection after each streamed reply although it announces keep-alive.
        result = client.send("chat", body, stream=True, timeout=self.phase.request_timeout_s, headers=FRESH)
        attempt = result.attempt
        record = RequestRecord(
            id=uuid.uuid4().hex,
            run_id=self.run_id,
            worker=self.worker,
            phase=self.phase.name,
            workload=workload,
            api="chat",
            stream=True,
            scheduled=attempt.sent,
            started=attempt.sent,
            end=attempt.end,
            wall_time=wall,
            attempts=[attempt],
            session_id=f"start-{number}",
            step=str(number),
            target=self.target.spec.name,
        )
        self.emit(record)
        return record

    def run(self) -> ColdStartResult:
        """All starts. A failed start (OOM, exit, timeout) is saved with its verdict, then raised
        as `TargetFailed`: the run ends partial, and its report shows the verdict."""
        result = ColdStartResult(self.phase.name, [])
        for number in range(1, self.phase.starts + 1):
            start = self._one(number)
            result.starts.append(start)
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
        start = StartResult(number, {})
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
        path.write_bytes(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2))
        return path
