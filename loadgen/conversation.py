"""Units of traffic: a single request, a multi-turn session, or a chain of dependent calls.

A session sends the whole history each turn (so prompts grow turn by turn, as a chat app's
do) and waits a think time between turns. A chain runs a small DAG: each step starts the
moment the steps it depends on have finished, so independent steps run concurrently (fan-out)
and a step depending on several waits for all of them (join); its prompt template is filled
with their replies (the text, then any tool calls' arguments: ``Reply.as_input``). A failed
call ends its session, or skips the steps that needed it.
"""

from __future__ import annotations

import random
import time
import uuid

import gevent
import gevent.event

from loadgen.corpus import count_tokens, estimate_tokens
from loadgen.prompts import Conversation, Message, PromptFactory
from loadgen.request import LogicalRequest, Requester, Scheduling
from loadgen.spec import CHAIN_INPUT, TEMPLATE_REF, ChainSpec, ChainStep, SessionSpec


def run_unit(requester: Requester, factory: PromptFactory, unit: Scheduling) -> bool:
    """Run one unit of ``unit.workload``'s shape (its prompts drawn from ``unit.rng``); records go to
    the requester's sink. True when every request of the unit succeeded.

    The unit's first request carries ``unit``'s times and phase. Later requests (a session's next
    turn, a chain step that waited for others) are scheduled when they are ready, in the phase
    current then."""
    requester.counters.units += 1
    conv = factory.conversation(unit.rng, unit.row)
    workload = unit.workload
    if workload.session is not None:
        return run_session(requester, workload.session, factory, conv, unit)
    if workload.chain is not None:
        return run_chain(requester, workload.chain, factory, conv, unit)
    record, _ = requester.send(unit, LogicalRequest(conv.messages, conv.max_tokens))
    return record.ok


def _trim_history(messages: list[Message], counts: list[int], limit: int | None) -> None:
    """Drop the oldest turns (never the system message or the newest user turn) beyond ``limit`` tokens;
    ``counts`` holds each message's estimated tokens and loses the same entries."""
    if limit is None:
        return
    first = 1 if messages and messages[0]["role"] == "system" else 0
    total = sum(counts)
    while len(messages) - first > 1 and total > limit:
        messages.pop(first)
        total -= counts.pop(first)


def _later(requester: Requester, unit: Scheduling, rng: random.Random) -> Scheduling:
    """A later request of ``unit``, ready now: scheduled now, in the phase current now."""
    now = time.monotonic()
    return Scheduling(unit.workload, rng, now, now, unit.user_id, requester.phase)


def run_session(
    requester: Requester, session: SessionSpec, factory: PromptFactory, conv: Conversation, unit: Scheduling
) -> bool:
    rng = unit.rng
    session_id = uuid.uuid4().hex
    turns = max(1, session.turns.sample(rng))
    if factory.items is not None and factory.source.kind == "sharegpt":
        turns = min(turns, 1 + len(conv.followups))  # replay the recorded conversation, no more
    messages = conv.messages
    # Each message's count, taken once when it joins the history: the estimate of every turn's
    # prompt sums them, rather than counting the whole history again (loadgen.corpus remembers
    # only recent texts).
    counts = [estimate_tokens(m["content"]) for m in messages]
    max_tokens = conv.max_tokens
    turn_unit = unit
    for turn in range(turns):
        if turn > 0:
            gevent.sleep(session.think_time.sample(rng))
            if turn - 1 < len(conv.followups):
                text, reference = conv.followups[turn - 1]
            else:
                text, reference = factory.user_turn(rng), None
            messages.append({"role": "user", "content": text})
            counts.append(estimate_tokens(text))
            _trim_history(messages, counts, session.max_history_tokens)
            max_tokens = factory.max_tokens(rng, reference)
            turn_unit = _later(requester, unit, rng)
        request = LogicalRequest(
            list(messages),
            max_tokens,
            session_id=session_id,
            step=str(turn + 1),
            want_text=True,
            estimated_tokens=sum(counts),
        )
        record, reply = requester.send(turn_unit, request)
        if not record.ok:
            return False
        reply_text = reply.text if reply is not None else ""
        messages.append({"role": "assistant", "content": reply_text})
        counts.append(count_tokens(reply_text))
    return True


def render(template: str, values: dict[str, str]) -> str:
    """Fill ``{{name}}`` references (validated to exist when the chain was declared)."""
    return TEMPLATE_REF.sub(lambda m: values.get(m.group(1), ""), template)


def run_chain(
    requester: Requester, chain: ChainSpec, factory: PromptFactory, conv: Conversation, unit: Scheduling
) -> bool:
    session_id = uuid.uuid4().hex
    system = [m for m in conv.messages if m["role"] == "system"]
    outputs: dict[str, str] = {CHAIN_INPUT: conv.messages[-1]["content"]}
    done: dict[str, gevent.event.AsyncResult] = {s.id: gevent.event.AsyncResult() for s in chain.steps}
    seeds = {s.id: unit.rng.random() for s in chain.steps}  # per-step streams: the same seed, the same traffic

    def step_task(step: ChainStep) -> None:
        deps = step.dependencies()
        if not all(done[dep].get() for dep in deps):
            done[step.id].set(False)
            return
        step_rng = random.Random(seeds[step.id])
        if deps:  # scheduled when its inputs were ready
            step_unit = _later(requester, unit, step_rng)
        else:
            step_unit = Scheduling(unit.workload, step_rng, unit.scheduled, unit.started, unit.user_id, unit.phase)
        max_tokens = step.output.sample(step_rng) if step.output is not None else conv.max_tokens
        messages = [*system, {"role": "user", "content": render(step.prompt, outputs)}]
        request = LogicalRequest(
            messages, max_tokens, session_id=session_id, step=step.id, want_text=True, tools=step.tools
        )
        try:
            record, reply = requester.send(step_unit, request)
        except BaseException:
            done[step.id].set(False)
            raise
        if record.ok:
            outputs[step.id] = reply.as_input() if reply is not None else ""
        done[step.id].set(record.ok)

    greenlets = [gevent.spawn(step_task, step) for step in chain.steps]
    try:
        gevent.joinall(greenlets, raise_error=True)
    finally:
        gevent.killall([g for g in greenlets if not g.dead], block=True)
    return all(result.get() for result in done.values())
