"""Writing tokens to the sockets: OpenAI/vLLM server-sent events from pre-encoded templates.

The engine calls ``StreamWriter.emit`` once per step with every sequence that got a token.
For each streaming sequence it joins a pre-encoded head, the token text and a tail, frames
it as one HTTP/1.1 chunk and writes it straight to the transport: no JSON encoding, task or
timer per token. Headers were sent by aiohttp (``StreamResponse.prepare``); the handler sends
the terminating zero-length chunk with ``write_eof`` once the sequence is done.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from typing import Any

import orjson

from targets.simulator.config import SimulatorConfig
from targets.simulator.faults import kind_of
from targets.simulator.metrics import EngineMetrics
from targets.simulator.sequence import Sequence
from targets.simulator.tokenizer import VOCAB_BYTES
from targets.simulator.trace import TraceWriter

MALFORMED_EVENT = b'data: {"malformed\n\n'
DONE_EVENT = b"data: [DONE]\n\n"
_V = len(VOCAB_BYTES)


def dumps_event(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def usage(prompt: int, completion: int, cached: int | None = None, reasoning: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
    }
    if cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def tool_call_id(seq: Sequence) -> str:
    return "call_" + seq.id.rsplit("-", 1)[-1][:24]


def _tool_delta(seq: Sequence, arguments: str, first: bool) -> dict[str, Any]:
    """The ``delta`` of a tool-call chunk: the call's id, type and name come with its first piece."""
    if first:
        call = {
            "index": 0,
            "id": tool_call_id(seq),
            "type": "function",
            "function": {"name": seq.tool_name, "arguments": arguments},
        }
    else:
        call = {"index": 0, "function": {"arguments": arguments}}
    return {"tool_calls": [call]}


def base(seq: Sequence) -> dict[str, Any]:
    obj = "chat.completion.chunk" if seq.api == "chat" else "text_completion"
    return {"id": seq.id, "object": obj, "created": seq.created, "model": seq.model}


def choice(seq: Sequence, text: str, finish: str | None) -> dict[str, Any]:
    if seq.api == "chat":
        return {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": finish, "stop_reason": None}
    return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None}


_MARKER = "\x00TOKEN\x00"


def _template(seq: Sequence, first_choice: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
    """A chunk's JSON split around ``_MARKER``: (head, tail, tail with a continuous-usage object)."""
    event = base(seq)
    event["choices"] = [first_choice]
    raw = orjson.dumps(event)
    head, tail = raw.split(orjson.dumps(_MARKER)[1:-1])
    usage_tail = b""
    if seq.continuous_usage:
        # drop the closing brace and append a usage object filled per chunk
        usage_tail = tail[:-1] + b',"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}}\n\n'
    return b"data: " + head, tail + b"\n\n", usage_tail


def _delta_choice(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish, "stop_reason": None}


def prepare_templates(seq: Sequence) -> None:
    """Split one content chunk's JSON around the token text, once per request (and a reasoning
    chunk's, and a tool call's arguments chunk's, when the request gets them)."""
    seq.head, seq.tail, seq.usage_tail = _template(seq, choice(seq, _MARKER, None))
    if seq.reasoning:
        seq.reasoning_template = _template(seq, _delta_choice({"reasoning_content": _MARKER}, None))
    if seq.tool_name is not None:
        seq.tool_template = _template(seq, _delta_choice(_tool_delta(seq, _MARKER, first=False), None))


def abort_with_reset(transport: Any) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed server or proxy would."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class StreamWriter:
    def __init__(self, config: SimulatorConfig, metrics: EngineMetrics, trace: TraceWriter) -> None:
        self.tpc = config.tokens_per_chunk
        self.metrics = metrics
        self.trace = trace

    def _text(self, seq: Sequence, k: int) -> bytes:
        w = seq.word
        seq.word = w + k
        if k == 1:
            return VOCAB_BYTES[w % _V]
        return b"".join(VOCAB_BYTES[(w + j) % _V] for j in range(k))

    def _token_event(self, seq: Sequence, k: int) -> bytes:
        """The chunk of the next ``k`` tokens: reasoning, content or tool-call arguments (never mixed:
        the writer flushes at the last reasoning token)."""
        written = len(seq.token_times)
        if written < seq.reasoning:
            assert seq.reasoning_template is not None
            head, tail, usage_tail = seq.reasoning_template
            text = self._text(seq, k)
        elif seq.tool_template is not None:
            if written == seq.reasoning:  # the call's first piece: its id and name, whole
                event = base(seq)
                pieces = self._tool_piece(seq, k, written, last=False).decode()
                event["choices"] = [_delta_choice(_tool_delta(seq, pieces, first=True), None)]
                if seq.continuous_usage:
                    event["usage"] = usage(seq.prompt_len, written + k)
                return dumps_event(event)
            head, tail, usage_tail = seq.tool_template
            text = orjson.dumps(self._tool_piece(seq, k, written, last=False).decode())[1:-1]
        else:
            head, tail, usage_tail = seq.head, seq.tail, seq.usage_tail
            text = self._text(seq, k)
        if seq.continuous_usage:
            done = written + k
            p = seq.prompt_len
            return head + text + usage_tail % (p, p + done, done)
        return head + text + tail

    def _tool_piece(self, seq: Sequence, k: int, written: int, last: bool) -> bytes:
        """The next ``k`` tokens of the call's arguments JSON (unescaped): the answer's words, after
        ``{"<argument>":"`` on the first piece and before ``"}`` on the last."""
        piece = self._text(seq, k)
        if written == seq.reasoning:
            piece = seq.tool_arguments("")[:-2] + piece
        if last:
            piece += b'"}'
        return piece

    def _first_events(self, seq: Sequence) -> bytes:
        seq.first_written = True
        if seq.api != "chat":
            return b""
        event = base(seq)
        event["choices"] = [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        ]
        if seq.continuous_usage:
            event["usage"] = usage(seq.prompt_len, 0)
        return dumps_event(event)

    def _final_events(self, seq: Sequence, k: int) -> bytes:
        written = len(seq.token_times)
        event = base(seq)
        if written < seq.reasoning:  # the output ended while reasoning: no answer
            reasoning = self._text(seq, k).decode()
            event["choices"] = [_delta_choice({"reasoning_content": reasoning}, seq.finish_reason)]
        elif seq.tool_name is not None:
            piece = self._tool_piece(seq, k, written, last=True).decode()
            delta = _tool_delta(seq, piece, first=written == seq.reasoning)
            event["choices"] = [_delta_choice(delta, seq.finish_reason)]
        else:
            event["choices"] = [choice(seq, self._text(seq, k).decode(), seq.finish_reason)]
        done = written + k
        if seq.continuous_usage:
            event["usage"] = usage(seq.prompt_len, done)
        out = dumps_event(event)
        if seq.include_usage:
            final = base(seq)
            final["choices"] = []
            reasoning_tokens = min(seq.reasoning, done) if seq.reasoning else None
            final["usage"] = usage(seq.prompt_len, done, seq.cached_tokens, reasoning_tokens)
            out += dumps_event(final)
        return out + DONE_EVENT

    def _write(self, seq: Sequence, payload: bytes, k: int) -> float:
        """One HTTP chunk to the socket; token times are taken as the write is issued."""
        assert seq.transport is not None
        now = time.monotonic()
        if k:
            seq.token_times.extend([now] * k)
        seq.transport.write(b"%x\r\n%b\r\n" % (len(payload), payload))
        return now

    def _write_tokens(self, seq: Sequence, payload: bytes, k: int) -> float:
        """Token events, behind the role chunk when they are the stream's first."""
        if not seq.first_written:
            payload = self._first_events(seq) + payload
        return self._write(seq, payload, k)

    def _end(self, seq: Sequence, outcome: str, now: float) -> None:
        if seq.finish is None:
            seq.finish = now
        seq.outcome = outcome
        if outcome != "ok":
            seq.aborted = True
        if not seq.done.done():
            seq.done.set_result(None)

    def emit(self, produced: list[Sequence], due: float) -> None:
        tpc = self.tpc
        for seq in produced:
            flush = False
            if seq.stall_seconds and seq.out == seq.fault_at and kind_of(seq.fault) == "stall":
                seq.stall_until = due + seq.stall_seconds
                flush = True  # what was sampled before the stall goes out now
            tr = seq.transport
            if tr is None:  # non-streaming: the handler writes the whole body
                if seq.finished:
                    self.metrics.finished(seq, seq.finish_reason, due)
                    self._end(seq, "ok", due)
                continue
            if tr.is_closing():
                self._end(seq, "client_gone", time.monotonic())
                continue
            if seq.out == seq.fault_at and self._strike(seq):
                continue
            seq.pending += 1
            if seq.pending < tpc and not seq.finished and not flush and seq.out != seq.reasoning:
                continue  # (the last reasoning token ends its chunk: a chunk is reasoning or answer)
            k = seq.pending
            seq.pending = 0
            if seq.finished:
                payload = self._final_events(seq, k)
            else:
                payload = self._token_event(seq, k)
            now = self._write_tokens(seq, payload, k)
            if seq.finished:
                self.metrics.finished(seq, seq.finish_reason, due)
                self._end(seq, "ok", now)

    def _strike(self, seq: Sequence) -> bool:
        """A mid-stream fault before output token ``fault_at``; True when the stream ended."""
        kind = kind_of(seq.fault)
        if kind == "stall":
            return False
        if seq.pending:  # tokens sampled before the fault still go out first
            k = seq.pending
            seq.pending = 0
            self._write_tokens(seq, self._token_event(seq, k), k)
        if kind == "malformed":
            self._write(seq, MALFORMED_EVENT, 0)
            seq.fault_at = -1
            return False
        now = time.monotonic()
        self._end(seq, kind or "ok", now)  # "cut": the handler ends the body cleanly
        if kind == "reset":
            assert seq.transport is not None
            self.trace.sequence(seq)
            abort_with_reset(seq.transport)
        return True
