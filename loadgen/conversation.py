"""Units of traffic: a single request, a multi-turn session, or a chain of dependent calls.

A session sends the whole history each turn (so prompts grow turn by turn, as a chat app's
do) and waits a think time between turns. A chain runs a small DAG: each step starts the
moment the steps it depends on have finished, so independent steps run concurrently (fan-out)
and a step depending on several waits for all of them (join); its prompt template is filled
with their replies. A failed call ends its session, or skips the steps that needed it.
"""

from __future__ import annotations

import random
import time
import uuid

import gevent
import gevent.event

from loadgen.corpus import estimate_tokens
from loadgen.prompts import Conversation, Message, PromptFactory, estimated_prompt_tokens
from loadgen.request import Requester
from loadgen.spec import CHAIN_INPUT, TEMPLATE_REF, ChainSpec, ChainStep, SessionSpec, WorkloadSpec


def run_unit(
    requester: Requester,
    workload: WorkloadSpec,
    factory: PromptFactory,
    rng: random.Random,
    scheduled: float,
    started: float | None = None,
    user_id: int | None = None,
    phase: str | None = None,
) -> None:
    """Run one unit of the workload's shape; records go to the requester's sink.

    ``phase`` is the phase the unit was scheduled in (default: the current one). Later steps
    (a session's next turn, a chain step that waited for others) take the phase current when
    they are scheduled."""
    phase = requester.phase if phase is None else phase
    requester.counters.units += 1
    conv = factory.conversation(rng)
    if workload.session is not None:
        run_session(requester, workload, workload.session, factory, conv, rng, scheduled, started, user_id, phase)
    elif workload.chain is not None:
        run_chain(requester, workload, workload.chain, factory, conv, rng, scheduled, started, user_id, phase)
    else:
        requester.send(workload, conv.messages, conv.max_tokens, rng, scheduled, started, user_id, phase=phase)


def _trim_history(messages: list[Message], limit: int | None) -> None:
    """Drop the oldest turns (never the system message or the newest user turn) beyond ``limit`` tokens."""
    if limit is None:
        return
    first = 1 if messages and messages[0]["role"] == "system" else 0
    total = estimated_prompt_tokens(messages)
    while len(messages) - first > 1 and total > limit:
        total -= estimate_tokens(messages.pop(first)["content"])


def run_session(
    requester: Requester,
    workload: WorkloadSpec,
    session: SessionSpec,
    factory: PromptFactory,
    conv: Conversation,
    rng: random.Random,
    scheduled: float,
    started: float | None,
    user_id: int | None,
    phase: str | None = None,
) -> None:
    session_id = uuid.uuid4().hex
    turns = max(1, session.turns.sample(rng))
    if factory.items is not None and factory.source.kind == "sharegpt":
        turns = min(turns, 1 + len(conv.followups))  # replay the recorded conversation, no more
    messages = conv.messages
    max_tokens = conv.max_tokens
    for turn in range(turns):
        if turn > 0:
            gevent.sleep(session.think_time.sample(rng))
            if turn - 1 < len(conv.followups):
                text, reference = conv.followups[turn - 1]
            else:
                text, reference = factory.user_turn(rng), None
            messages.append({"role": "user", "content": text})
            _trim_history(messages, session.max_history_tokens)
            max_tokens = factory.max_tokens(rng, reference)
            scheduled = started = time.monotonic()
            phase = requester.phase  # this turn is scheduled now, in the phase current now
        record, reply = requester.send(
            workload,
            list(messages),
            max_tokens,
            rng,
            scheduled,
            started,
            user_id,
            session_id=session_id,
            step=str(turn + 1),
            want_text=True,
            phase=phase,
        )
        if not record.ok:
            return
        messages.append({"role": "assistant", "content": reply or ""})


def render(template: str, values: dict[str, str]) -> str:
    """Fill ``{{name}}`` references (validated to exist when the chain was declared)."""
    return TEMPLATE_REF.sub(lambda m: values.get(m.group(1), ""), template)


def run_chain(
    requester: Requester,
    workload: WorkloadSpec,
    chain: ChainSpec,
    factory: PromptFactory,
    conv: Conversation,
    rng: random.Random,
    scheduled: float,
    started: float | None,
    user_id: int | None,
    phase: str | None = None,
) -> None:
    session_id = uuid.uuid4().hex
    system = [m for m in conv.messages if m["role"] == "system"]
    outputs: dict[str, str] = {CHAIN_INPUT: conv.messages[-1]["content"]}
    done: dict[str, gevent.event.AsyncResult] = {s.id: gevent.event.AsyncResult() for s in chain.steps}
    seeds = {s.id: rng.random() for s in chain.steps}  # per-step streams: the same seed, the same traffic

    def step_task(step: ChainStep) -> None:
        deps = step.dependencies()
        if not all(done[dep].get() for dep in deps):
            done[step.id].set(False)
            return
        ready = scheduled if not deps else time.monotonic()
        step_phase = phase if not deps else requester.phase  # scheduled when its inputs were ready
        step_rng = random.Random(seeds[step.id])
        max_tokens = step.output.sample(step_rng) if step.output is not None else conv.max_tokens
        messages = system + [{"role": "user", "content": render(step.prompt, outputs)}]
        try:
            record, reply = requester.send(
                workload,
                messages,
                max_tokens,
                step_rng,
                ready,
                started if not deps else ready,
                user_id,
                session_id=session_id,
                step=step.id,
                want_text=True,
                phase=step_phase,
            )
        except BaseException:
            done[step.id].set(False)
            raise
        if record.ok:
            outputs[step.id] = reply or ""
        done[step.id].set(record.ok)

    greenlets = [gevent.spawn(step_task, step) for step in chain.steps]
    try:
        gevent.joinall(greenlets, raise_error=True)
    finally:
        gevent.killall([g for g in greenlets if not g.dead], block=True)
