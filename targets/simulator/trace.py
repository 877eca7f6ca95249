"""Ground truth: one JSON line per generation request, written when its response ended.

Clock: every time is ``time.monotonic()`` in seconds (Linux ``CLOCK_MONOTONIC``, shared by
all processes on the machine), the same clock as the load generator's records.

Fields: ``id``, ``path``, ``stream``, ``arrival`` (the kernel received the request's first bytes:
``SO_TIMESTAMPNS``, targets/simulator/stamps.py; the handler's time where there is no stamp),
``handler`` (the handler got the request, after the event loop and HTTP parser), ``queue_exit``
(first scheduled; null if never), ``token_times`` (when each output token was written to the
socket; a chunk of k tokens gives k equal entries), ``token_due`` (end of the engine step that
made each token: the model's schedule), ``finish`` (last byte written or the request ended),
``prompt_tokens``, ``output_tokens`` (tokens written), ``cached_tokens``, ``preemptions``,
``status`` (HTTP status), ``fault`` (injected fault label or null), ``outcome`` (``ok``,
``reset``, ``cut``, ``client_gone``, ``rejected``), ``finish_reason``.

Reasoning and tool calls: ``reasoning_tokens`` (the first that many of ``token_times`` were
reasoning tokens, the rest the answer), ``tool_call`` (the name of the tool the answer called,
or null) and ``tool_arguments`` (the call's whole arguments JSON, as written when the stream ended
normally; of the tokens written, closed, when a fault cut it; or null).
With ``trace_prompts`` set, ``prompt``: the request's prompt text (chat: each message's text,
one a line).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import orjson

from targets.simulator.sequence import Sequence
from targets.simulator.tokenizer import VOCAB


class TraceWriter:
    """Appends lines unbuffered-per-line so a reader sees every finished request at once."""

    def __init__(self, path: Path | None) -> None:
        self._file: IO[bytes] | None = open(path, "ab") if path is not None else None  # noqa: SIM115 - open for the server's life; close() at the app's cleanup

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def sequence(self, seq: Sequence) -> None:
        """Write ``seq``'s line once; called just before its response's last byte goes out,
        so a client that has read the whole response finds the line."""
        if self._file is None or seq.traced:
            return
        seq.traced = True
        written = len(seq.token_times)
        reasoning = min(seq.reasoning, written)
        arguments = None
        if seq.tool_name is not None and written > reasoning:
            words = "".join(VOCAB[i % len(VOCAB)] for i in range(reasoning, written))
            arguments = seq.tool_arguments(words).decode()
        line = {
            "id": seq.id,
            "path": seq.path,
            "stream": seq.stream,
            "arrival": seq.received,
            "handler": seq.arrival,
            "queue_exit": seq.queue_exit,
            "token_times": seq.token_times,
            "token_due": seq.token_due[: len(seq.token_times)],
            "finish": seq.finish,
            "prompt_tokens": seq.prompt_len,
            "output_tokens": len(seq.token_times),
            "cached_tokens": seq.cached_tokens,
            "preemptions": seq.preemptions,
            "status": seq.status,
            "fault": seq.fault,
            "outcome": seq.outcome,
            "finish_reason": seq.finish_reason if seq.outcome == "ok" else None,
            "reasoning_tokens": reasoning,
            "tool_call": seq.tool_name,
            "tool_arguments": arguments,
        }
        if seq.prompt_text is not None:
            line["prompt"] = seq.prompt_text
        self._line(line)

    def rejected(
        self,
        rid: str,
        path: str,
        stream: bool | None,
        received: float,
        arrival: float,
        finish: float,
        status: int,
        fault: str | None,
        prompt_tokens: int | None = None,
    ) -> None:
        """A request answered with an error before it reached the engine."""
        if self._file is None:
            return
        self._line(
            {
                "id": rid,
                "path": path,
                "stream": stream,
                "arrival": received,
                "handler": arrival,
                "queue_exit": None,
                "token_times": [],
                "token_due": [],
                "finish": finish,
                "prompt_tokens": prompt_tokens,
                "output_tokens": 0,
                "cached_tokens": 0,
                "preemptions": 0,
                "status": status,
                "fault": fault,
                "outcome": "rejected",
                "finish_reason": None,
                "reasoning_tokens": 0,
                "tool_call": None,
                "tool_arguments": None,
            }
        )

    def _line(self, record: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write(orjson.dumps(record) + b"\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
