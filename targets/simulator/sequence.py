"""One request's life inside the simulated engine: what it asked for and what happened to it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson


class Sequence:
    """Mutable per-request state shared by the HTTP handler, the engine and the stream writer.

    Slots, not a dataclass with defaults per field: the engine touches these in its hot loop.
    """

    __slots__ = (
        "aborted",
        "admitted",
        "api",
        "arrival",
        "block_hashes",
        "blocks",
        "cached_tokens",
        "continuous_usage",
        "created",
        "done",
        "fault",
        "fault_at",
        "finish",
        "finish_reason",
        "finished",
        "first_written",
        "head",
        "id",
        "include_usage",
        "max_tokens",
        "model",
        "num_computed",
        "out",
        "outcome",
        "path",
        "pending",
        "preemptions",
        "prompt_len",
        "prompt_text",
        "queue_exit",
        "reasoning",
        "reasoning_template",
        "received",
        "stall_seconds",
        "stall_until",
        "status",
        "stream",
        "tail",
        "target",
        "token_due",
        "token_times",
        "tool_argument",
        "tool_name",
        "tool_template",
        "traced",
        "transport",
        "usage_tail",
        "word",
    )

    def __init__(
        self,
        *,
        id: str,
        api: str,
        path: str,
        stream: bool,
        model: str,
        created: int,
        prompt_len: int,
        block_hashes: list[int],
        max_tokens: int,
        target: int,
        arrival: float,
        done: asyncio.Future[Any],
        received: float | None = None,
    ) -> None:
        self.id = id
        self.api = api  # "chat" | "completions"
        self.path = path
        self.stream = stream
        self.model = model
        self.created = created
        self.prompt_len = prompt_len
        self.block_hashes = block_hashes  # chained hashes of the prompt's full KV blocks
        self.max_tokens = max_tokens
        self.target = target  # output tokens this request will get
        self.finish_reason = "length" if target >= max_tokens else "stop"
        self.num_computed = 0  # tokens whose KV is in the cache
        self.out = 0  # output tokens sampled so far
        self.blocks = 0  # KV blocks held
        self.cached_tokens = 0  # prompt tokens served by the prefix cache (first admission)
        self.admitted = False
        self.arrival = arrival  # the handler got it: the engine's queue starts here
        self.received = arrival if received is None else received  # the kernel got its first bytes (<= arrival)
        self.queue_exit: float | None = None
        self.token_due: list[float] = []  # model schedule: end of the step that made each token
        self.token_times: list[float] = []  # when each token was written to the socket
        self.finish: float | None = None
        self.preemptions = 0
        self.stall_until = 0.0
        self.fault: str | None = None  # fault label as written to the trace
        self.fault_at = -1  # reset/cut/malformed strike before writing output token fault_at
        self.stall_seconds = 0.0
        self.transport: asyncio.Transport | None = None
        self.done = done
        self.status = 200
        self.aborted = False  # the client went away, or a fault ended the request
        self.outcome = "ok"  # ok | reset | cut | client_gone
        self.include_usage = False
        self.continuous_usage = False
        self.pending = 0  # tokens sampled but not yet written (tokens_per_chunk > 1)
        self.word = 0  # index of the next output word
        self.head = b""  # pre-encoded SSE chunk up to the token text
        self.tail = b""  # pre-encoded SSE chunk after the token text
        self.usage_tail = b""  # tail with a %d placeholder set for continuous usage
        self.first_written = False
        self.finished = False
        self.traced = False  # its trace line is written (once, before the response's last byte)
        self.reasoning = 0  # the first this many output tokens are reasoning (reasoning_content)
        self.tool_name: str | None = None  # the answer is a call of this tool (the request carried tools)
        self.tool_argument = "input"  # the argument the call's JSON fills
        # (head, tail, tail with continuous usage) of a reasoning / a tool-call arguments chunk, as head/tail
        self.reasoning_template: tuple[bytes, bytes, bytes] | None = None
        self.tool_template: tuple[bytes, bytes, bytes] | None = None
        self.prompt_text: str | None = None  # kept for the trace when trace_prompts is set

    def tool_arguments(self, answer: str) -> bytes:
        """The whole arguments JSON of the simulated tool call whose answer words are ``answer``."""
        return orjson.dumps({self.tool_argument: answer})

    def drop(self) -> None:
        """The client went away before the request ended: mark it so, and release its waiter."""
        if not self.done.done():
            self.aborted = True
            self.outcome = "client_gone"
            self.finish = time.monotonic()
            self.done.set_result(None)
