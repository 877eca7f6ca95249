"""One logical request: its attempts, its record, and what Locust is told about it.

A request is sent as a ``Scheduling`` (when, for whom and in which phase its unit of traffic
was scheduled) and a ``LogicalRequest`` (what it asks for), so call sites name what they pass.

The record goes to the sink whatever happened — success, exhausted retries, or the run
stopping mid-flight (``cancelled``) — so nothing measured is lost. Locust's own ``request``
event fires per attempt (E2E as the response time, under the workload's name) and once more
for the TTFT (request type ``TTFT``), so its web UI and CSV show both; a reasoning reply fires
a third for its TTFOT (``TTFOT``: the first answer token came after the first token).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent

from loadgen.budget import PhaseBudgets
from loadgen.client import AttemptResult, EndpointClient
from loadgen.prompts import Message, as_completion_prompt, estimated_prompt_tokens
from loadgen.records import Attempt, ErrorClass, RequestRecord, new_record_id
from loadgen.retry import run_attempts
from loadgen.spec import RetryPolicy, Tool, WorkloadSpec, tools_body
from loadgen.wakeclock import sleep_until

E2E_TYPE = "POST"
TTFT_TYPE = "TTFT"
TTFOT_TYPE = "TTFOT"


class LLMRequestError(Exception):
    """What Locust's failure table shows: the error class and status, not per-request detail."""


@dataclass
class RequestCounters:
    """Live counts a worker reports in its samples."""

    units: int = 0  # logical requests, sessions or chains begun
    requests: int = 0
    in_flight: int = 0


@dataclass(slots=True)
class Scheduling:
    """When, for whom and in which phase a unit of traffic (or one of its later requests) was scheduled.

    ``scheduled``: when the arrival process (open) or the user (closed) wanted it sent;
    ``started``: when the client began work on it (it left the client queue). ``phase`` is the
    phase it was scheduled in: a request queued or in flight when the next phase begins still
    belongs to its own. ``rng`` draws its retry jitter (and, for a unit, its prompts); ``row``
    is the trace row a replay's unit sends."""

    workload: WorkloadSpec
    rng: random.Random
    scheduled: float
    started: float
    user_id: int | None  # the closed-loop user; None for open-loop units
    phase: str
    ticketed: bool = False  # its ticket of the phase's requests was taken when it was scheduled (loadgen.budget)
    row: int | None = None  # the trace row a replay sends


@dataclass(slots=True)
class LogicalRequest:
    """What one logical request asks for; its attempts all send the same body."""

    messages: list[Message]
    max_tokens: int | None
    session_id: str | None = None  # the multi-turn conversation or chain it belongs to
    step: str | None = None  # turn number or chain step id
    want_text: bool = False  # the caller needs the reply (next turn, dependent step)
    estimated_tokens: int | None = None  # the messages' estimated token count, when the caller keeps it
    tools: list[Tool] | None = None  # sent instead of the workload's (a chain step's own)


@dataclass(frozen=True, slots=True)
class Reply:
    """What the endpoint answered, for a caller that asked (``want_text``): the content's text and
    each tool call's arguments (JSON text)."""

    text: str = ""
    tool_arguments: tuple[str, ...] = ()

    def as_input(self) -> str:
        """The reply as a later step's prompt gets it: the text, then each call's arguments, one a line."""
        return "\n".join(part for part in (self.text, *self.tool_arguments) if part)


@dataclass
class Requester:
    """Everything a worker's users share to send logical requests and record them."""

    client: EndpointClient
    retry: RetryPolicy
    run_id: str
    worker: str
    target: str
    record: Callable[[RequestRecord], None]  # the sink's add (or a list's append in tests)
    events: Any = None  # locust Events, or None outside Locust
    phase: str = ""  # the current phase: what units scheduled now belong to
    counters: RequestCounters = field(default_factory=RequestCounters)
    begin: Callable[[], None] | None = None  # told before each logical request is sent (the sink counts it)
    budget: PhaseBudgets = field(default_factory=PhaseBudgets)  # requests each phase may still begin

    def admit(self, unit: Scheduling) -> None:
        """Take ``unit``'s ticket of its phase's requests, unless it has one; :class:`BudgetSpent` when none is left."""
        if not unit.ticketed:
            self.budget.take(unit.phase)
            unit.ticketed = True

    def send(self, unit: Scheduling, request: LogicalRequest) -> tuple[RequestRecord, Reply | None]:
        """Send with retries, record, tell Locust; returns the record and (if asked) the reply.
        :class:`~loadgen.budget.BudgetSpent`, before anything is sent, when the phase's requests are spent."""
        self.admit(unit)
        workload = unit.workload
        wall = time.time() - (time.monotonic() - unit.scheduled)
        messages = request.messages
        prompt: list[Message] | str = messages if workload.api == "chat" else as_completion_prompt(messages)
        tools = tools_body(request.tools if request.tools is not None else workload.tools)
        body = self.client.body(
            workload.api, workload.stream, prompt, request.max_tokens, workload.request_sampling, tools
        )
        headers = workload.headers or None
        # Counted now, right after the prompt was made, while its count is surely still known
        # (loadgen.corpus keeps only recent ones); by the time the record is written it may not be.
        estimated = request.estimated_tokens
        if estimated is None:
            estimated = estimated_prompt_tokens(messages)
        results: list[AttemptResult] = []

        def one(number: int, waited: float, timeout: float | None) -> AttemptResult:
            result = self.client.send(
                workload.api,
                body,
                workload.stream,
                number=number,
                retry_wait=waited,
                timeout=timeout,
                want_text=request.want_text,
                headers=headers,
            )
            results.append(result)
            self._tell_locust(workload, result.attempt)
            return result

        self.counters.requests += 1
        self.counters.in_flight += 1
        try:
            if self.begin is not None:
                self.begin()  # may wait on Redis: inside the try, so a stop then still leaves a record
            if unit.scheduled > time.monotonic():  # made ahead of its time (a replay's row): sent on time,
                sleep_until(unit.scheduled)  # with the body built and the sink told already
            run_attempts(self.retry, one, unit.rng)
        except gevent.GreenletExit:  # killed before the first attempt or while waiting between attempts
            now = time.monotonic()
            waited = now - results[-1].attempt.end if results else 0.0
            never_sent = Attempt(
                number=len(results) + 1,
                sent=now,
                end=now,
                retry_wait=waited,
                error=ErrorClass.CANCELLED.value,
                error_detail="the run stopped before this attempt",
            )
            results.append(AttemptResult(never_sent, cancelled=True))
        finally:
            self.counters.in_flight -= 1
        record = self._record(unit, request, results, wall, estimated)
        if results[-1].cancelled:
            raise gevent.GreenletExit
        last = results[-1]
        if last.text is None and not last.tool_arguments:
            return record, None
        return record, Reply(last.text or "", last.tool_arguments)

    def _record(
        self, unit: Scheduling, request: LogicalRequest, results: list[AttemptResult], wall: float, estimated: int
    ) -> RequestRecord:
        attempts = [r.attempt for r in results]
        messages = request.messages
        count = self.client.count_tokens
        if count is not None:  # the server reported no prompt usage: count the messages' text, once
            counted: int | None = None
            for a in attempts:
                if a.prompt_tokens is None and a.status == 200:
                    if counted is None:
                        counted = sum(count(m["content"]) for m in messages)
                    a.prompt_tokens = counted
        workload = unit.workload
        record = RequestRecord(
            id=new_record_id(),
            run_id=self.run_id,
            worker=self.worker,
            phase=unit.phase,
            workload=workload.name,
            api=workload.api,
            stream=workload.stream,
            scheduled=unit.scheduled,
            started=unit.started,
            end=attempts[-1].end if attempts else time.monotonic(),
            wall_time=wall,
            attempts=attempts,
            session_id=request.session_id,
            step=request.step,
            user_id=unit.user_id,
            target=self.target,
            estimated_prompt_tokens=estimated,
        )
        self.record(record)
        return record

    def _tell_locust(self, workload: WorkloadSpec, attempt: Attempt) -> None:
        if self.events is None or attempt.error == ErrorClass.CANCELLED.value:
            return
        fire = self.events.request.fire
        exc = None
        if attempt.error is not None:
            status = f" (HTTP {attempt.status})" if attempt.status else ""
            exc = LLMRequestError(f"{attempt.error}{status}")
        fire(
            request_type=E2E_TYPE,
            name=workload.name,
            response_time=(attempt.end - attempt.sent) * 1000.0,
            response_length=attempt.output_tokens or 0,
            exception=exc,
            context={"attempt": attempt.number},
        )
        firsts = [(TTFT_TYPE, attempt.first_token)]
        if attempt.first_answer != attempt.first_token:  # only replies that reasoned first
            firsts.append((TTFOT_TYPE, attempt.first_answer))
        for request_type, first in firsts:
            if first is not None:
                fire(
                    request_type=request_type,
                    name=workload.name,
                    response_time=(first - attempt.sent) * 1000.0,
                    response_length=0,
                    exception=None,
                    context={"attempt": attempt.number},
                )
