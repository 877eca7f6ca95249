"""The request record: the unit of truth.

Every summary, live metric, report and comparison is derived from these records and
nothing else. A record is written once by the worker that measured it, carried by the
run's Redis Stream, and stored in the run directory.

Clock: every timestamp is ``time.monotonic()`` in seconds, which on Linux is
``CLOCK_MONOTONIC`` — one system-wide clock that every process on the machine shares,
so a worker's timestamps can be compared with the simulator's trace. ``wall_time`` is
the only wall-clock value, kept for humans and plots.

Per-chunk arrivals are stored compactly as integer microseconds after the attempt's
``sent`` (``chunk_us``) with the number of tokens each chunk carried (``chunk_tokens``).

A reasoning model's reply is reasoning (``delta.reasoning_content`` or ``delta.reasoning``)
followed by the answer (``delta.content`` or ``delta.tool_calls``): ``first_token`` is the first
of either, ``first_answer`` the first answer delta, ``answer_chunk`` the index in ``chunk_us`` of
the chunk that carried it, and ``reasoning_tokens`` the part of ``output_tokens`` that was
reasoning. Records written before these fields existed load with them unset (``None``).
"""

from __future__ import annotations

import enum
import itertools
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

SCHEMA_VERSION = 1


class _RecordIds:
    """Record ids: 32 hex digits, as a uuid4's ``hex``, made of 64 random bits drawn once per
    process (again in a forked child) and a 64-bit counter. Unique as a uuid4 is for any run's
    number of records, at a fraction of its cost (``uuid4`` reads ``os.urandom`` for each)."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count()

    def new(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


new_record_id = _RecordIds().new


class ErrorClass(enum.StrEnum):
    """Why an attempt failed. ``None`` on a record means it succeeded."""

    HTTP_4XX = "http_4xx"
    HTTP_429 = "http_429"
    HTTP_5XX = "http_5xx"
    TIMEOUT = "timeout"
    CONNECT = "connect_error"
    RESET = "reset"  # connection closed or reset mid-stream
    MALFORMED = "malformed_chunk"
    INCOMPLETE = "incomplete_stream"  # stream ended without usage or [DONE]
    EMPTY = "empty_output"
    CANCELLED = "cancelled"  # the run stopped while the request was in flight


ERROR_CLASSES: tuple[str, ...] = tuple(e.value for e in ErrorClass)
OK = "ok"


@dataclass(slots=True)
class Attempt:
    """One HTTP request sent to the endpoint (a logical request may need several)."""

    number: int  # 1-based
    sent: float  # monotonic s: request bytes written
    end: float  # monotonic s: response finished, failed or was abandoned
    status: int | None = None  # HTTP status; None when no response arrived
    error: str | None = None  # an ErrorClass value, None on success
    error_detail: str | None = None  # short human text (one line)
    retry_wait: float = 0.0  # seconds waited before this attempt was sent
    first_byte: float | None = None  # monotonic s: first response byte
    first_token: float | None = None  # monotonic s: first non-empty content, reasoning or tool-call delta
    chunk_us: list[int] = field(default_factory=list)  # token-bearing chunk arrivals, us after sent
    chunk_tokens: list[int] = field(default_factory=list)  # tokens carried by each such chunk
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    tokens_estimated: bool = False  # counts did not come from the server's usage
    cached_tokens: int | None = None  # prompt tokens served from the server's prefix cache
    response_id: str | None = None  # the server's completion id (first event's "id"), to match server logs
    first_answer: float | None = None  # monotonic s: first content or tool-call delta (None: no answer, or older)
    answer_chunk: int | None = None  # index in chunk_us of the chunk with the first answer delta
    reasoning_tokens: int | None = None  # of output_tokens: the server's usage details, else counted from events

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def answer_tokens(self) -> int | None:
        """Output tokens that were the answer (all of them without reasoning); None when unknown."""
        if self.output_tokens is None:
            return None
        return max(0, self.output_tokens - (self.reasoning_tokens or 0))


@dataclass(slots=True)
class RequestRecord:
    """One logical request: what a user of the endpoint asked for and got, with every attempt."""

    id: str  # unique, used to de-duplicate (32 hex digits: new_record_id)
    run_id: str
    worker: str  # worker id (host:pid)
    phase: str
    workload: str
    api: str  # "chat" | "completions"
    stream: bool
    scheduled: float  # monotonic s: when the arrival process wanted it sent
    started: float  # monotonic s: when the client began work on it (left the client queue)
    end: float  # monotonic s: when the last attempt ended
    wall_time: float  # time.time() at `scheduled`
    attempts: list[Attempt]
    session_id: str | None = None  # multi-turn conversation or chain instance
    step: str | None = None  # turn number or chain step id
    user_id: int | None = None
    target: str = ""  # the endpoint's label (scenario target name)
    estimated_prompt_tokens: int | None = None  # what the client asked for (synthetic length)
    schema: int = SCHEMA_VERSION

    @property
    def final(self) -> Attempt:
        return self.attempts[-1]

    @property
    def outcome(self) -> str:
        """``"ok"`` or the final attempt's error class."""
        err = self.attempts[-1].error if self.attempts else ErrorClass.CANCELLED.value
        return err or OK

    @property
    def ok(self) -> bool:
        return self.outcome == OK

    @property
    def retries(self) -> int:
        return max(0, len(self.attempts) - 1)

    @classmethod
    def of_attempts(
        cls,
        attempts: list[Attempt],
        *,
        run_id: str,
        worker: str,
        phase: str,
        workload: str,
        api: str,
        target: str,
        session_id: str | None = None,
        step: str | None = None,
    ) -> RequestRecord:
        """A streamed logical request sent as soon as it was asked for (the coordinator's own
        requests: the pre-flight check, cold starts)."""
        first, last = attempts[0], attempts[-1]
        return cls(
            id=new_record_id(),
            run_id=run_id,
            worker=worker,
            phase=phase,
            workload=workload,
            api=api,
            stream=True,
            scheduled=first.sent,
            started=first.sent,
            end=last.end,
            wall_time=time.time() - (time.monotonic() - first.sent),
            attempts=attempts,
            session_id=session_id,
            step=step,
            target=target,
        )

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestRecord:
        data = dict(data)
        version = data.get("schema", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(f"record schema {version} is not supported (expected {SCHEMA_VERSION})")
        data["attempts"] = [Attempt(**a) for a in data.get("attempts", [])]
        return cls(**data)

    @classmethod
    def from_json(cls, raw: bytes | str) -> RequestRecord:
        return cls.from_dict(orjson.loads(raw))
