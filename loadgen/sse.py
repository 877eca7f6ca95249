"""Incremental parsing of an OpenAI-compatible SSE stream, as bytes arrive: the hot path.

A worker at 128 concurrent streams sees tens of thousands of events a second, so each event
is read with ``bytes.find`` on the receive buffer (no split into lines, no ``json.loads``):
only the fields the record needs are located — whether the delta carries text, the running
``completion_tokens`` of vLLM's continuous usage stats, and the final usage. Text is decoded
only when a session or chain needs the reply. Both compact JSON and ``json.dumps``'s
``": "`` spacing are understood.

A delta is answer (``content``, or ``text`` of the completions API), else reasoning
(``reasoning_content``, vLLM and SGLang; ``reasoning``, newer vLLM), else a tool call
(``tool_calls``, answer too): a content chunk, the common case, costs one search as before;
only chunks without content are searched for the other keys.
"""

from __future__ import annotations

import orjson

from loadgen.records import ErrorClass

_DATA = b"data:"
_DONE = b"[DONE]"
_USAGE = b'"usage":'
_COMPLETION = b'"completion_tokens":'
_PROMPT = b'"prompt_tokens":'
_CACHED = b'"cached_tokens":'
_ERROR = b'"error":'
_ID = b'"id":'
_REASONING_KEYS = (b'"reasoning_content":', b'"reasoning":')
_REASONING_TOKENS = b'"reasoning_tokens":'
_TOOL_CALLS = b'"tool_calls":'
_ARGUMENTS = b'"arguments":'
_INDEX = b'"index":'
_BRACKET = 91
_SPACE = 32
_QUOTE = 34
_BACKSLASH = 92


def _skip_spaces(buf: bytes, i: int, end: int) -> int:
    while i < end and buf[i] == _SPACE:
        i += 1
    return i


def _int_at(buf: bytes, i: int, end: int) -> int | None:
    """The JSON integer starting at ``buf[i]`` (spaces skipped), or None (e.g. ``null``)."""
    i = _skip_spaces(buf, i, end)
    j = i
    while j < end and 48 <= buf[j] <= 57:
        j += 1
    return int(buf[i:j]) if j > i else None


def _string_end(buf: bytes, q: int, end: int) -> int:
    """Index of the closing quote of the JSON string whose opening quote is at ``q``."""
    j = buf.find(b'"', q + 1, end)
    while j > 0:
        k = j - 1
        while buf[k] == _BACKSLASH:
            k -= 1
        if (j - 1 - k) % 2 == 0:
            return j
        j = buf.find(b'"', j + 1, end)
    return -1


class StreamParser:
    """Consumes the de-chunked body of one streamed response and fills in what the record needs.

    ``feed(data, now)`` takes whatever bytes one ``recv`` returned and the monotonic time it
    returned; events complete in it are parsed, the incomplete tail is kept for the next call.
    """

    __slots__ = (
        "answer_chunk",
        "cached_tokens",
        "chat",
        "chunk_tokens",
        "chunk_us",
        "completion",
        "continuous",
        "done",
        "error",
        "error_detail",
        "events",
        "first_answer",
        "first_token",
        "key",
        "output_tokens",
        "pieces",
        "prompt_tokens",
        "reasoning_counted",
        "reasoning_pieces",
        "reasoning_tokens",
        "response_id",
        "sent",
        "sep",
        "tail",
        "tool_pieces",
        "usage_seen",
        "want_text",
    )

    def __init__(self, sent: float, chat: bool, want_text: bool) -> None:
        self.sent = sent
        self.chat = chat
        self.key = b'"content":' if chat else b'"text":'
        self.want_text = want_text
        self.sep = b""  # b"\n\n" or b"\r\n\r\n", decided by the first bytes
        self.tail = b""
        self.first_token: float | None = None  # any token: content, reasoning or tool call
        self.first_answer: float | None = None  # the first content or tool-call token
        self.answer_chunk: int | None = None  # its index in chunk_us
        self.reasoning_counted = 0  # tokens of the reasoning chunks (as chunk_tokens counts them)
        self.reasoning_tokens: int | None = None  # from the final usage's completion_tokens_details
        self.reasoning_pieces: list[bytes] = []  # raw JSON strings of the reasoning, kept as pieces are
        self.tool_pieces: dict[int, list[bytes]] = {}  # tool call index -> raw JSON strings of its arguments
        self.chunk_us: list[int] = []
        self.chunk_tokens: list[int] = []
        self.completion = 0  # running completion_tokens of continuous usage stats
        self.continuous = False  # the server reports running usage per chunk
        self.prompt_tokens: int | None = None
        self.output_tokens: int | None = None  # from the final usage
        self.cached_tokens: int | None = None
        self.done = False
        self.usage_seen = False
        self.error: str | None = None
        self.error_detail: str | None = None
        self.pieces: list[bytes] = []  # raw JSON strings of the text, decoded on demand
        self.events = 0
        self.response_id: str | None = None

    def feed(self, data: bytes, now: float) -> None:
        if self.tail:
            data = self.tail + data
        if not self.sep:
            self.sep = b"\r\n\r\n" if b"\r\n" in data[:512] else b"\n\n"
        sep = self.sep
        start = 0
        while True:
            end = data.find(sep, start)
            if end < 0:
                break
            self._event(data, start, end, now)
            start = end + len(sep)
        self.tail = data[start:] if start < len(data) else b""

    def _event(self, buf: bytes, start: int, end: int, now: float) -> None:
        p = buf.find(_DATA, start, end)
        if p < 0:
            return  # comment, keep-alive or event: line without data
        p = _skip_spaces(buf, p + 5, end)
        self.events += 1
        if p >= end or buf[p] != 123 or buf[end - 1] != 125:  # not {...}
            if buf.startswith(_DONE, p):
                self.done = True
            else:
                self._fail(ErrorClass.MALFORMED, f"event is not a JSON object: {buf[p : min(end, p + 80)]!r}")
            return
        if self.response_id is None:
            self._read_id(buf, p, end)
        # the delta: content (or text) first; reasoning, then tool calls, only when there is no content
        text = answer = False  # text: any token-bearing delta; answer: content or a tool call
        key = self.key
        k = buf.find(key, p, end)
        if k >= 0:
            q = k + len(key)
            if buf[q] == _SPACE:
                q = _skip_spaces(buf, q, end)
            if buf[q] == _QUOTE and buf[q + 1] != _QUOTE:
                text = answer = True
                if self.want_text:
                    e = _string_end(buf, q, end)
                    if e < 0:
                        self._fail(ErrorClass.MALFORMED, "unterminated string in event")
                        return
                    self.pieces.append(buf[q : e + 1])
        if not text and self.chat:
            for rkey in _REASONING_KEYS:
                k = buf.find(rkey, p, end)
                if k >= 0:
                    q = _skip_spaces(buf, k + len(rkey), end)
                    if buf[q] == _QUOTE and buf[q + 1] != _QUOTE:
                        text = True
                        if self.want_text:
                            e = _string_end(buf, q, end)
                            if e < 0:
                                self._fail(ErrorClass.MALFORMED, "unterminated string in event")
                                return
                            self.reasoning_pieces.append(buf[q : e + 1])
                        break
            if not text:
                k = buf.find(_TOOL_CALLS, p, end)
                if k >= 0:
                    q = _skip_spaces(buf, k + len(_TOOL_CALLS), end)
                    if buf[q] == _BRACKET and buf[_skip_spaces(buf, q + 1, end)] != 93:  # a non-empty array
                        text = answer = True
                        if self.want_text and not self._tool_arguments(buf, q, end):
                            return
        # usage: vLLM's continuous stats put a running count on every text chunk from the first;
        # any other usage is the final report (vLLM's `choices: []` chunk, llama.cpp's finish chunk)
        tokens = 0
        u = buf.find(_USAGE, p, end)
        if u >= 0:
            u = _skip_spaces(buf, u + len(_USAGE), end)
            if buf[u] == 123:  # an object, not null
                running = self.continuous or (text and not self.chunk_us)
                if not running and not text and not self.chunk_us and self._zero_completion(buf, u, end):
                    running = True  # vLLM's role chunk: a running report of 0 tokens, not the final one
                if not running or (
                    not text and (buf.find(b'"choices":[]', p, end) >= 0 or buf.find(b'"choices": []', p, end) >= 0)
                ):
                    self._final_usage(buf, u, end)
                c = buf.find(_COMPLETION, u, end) if running else -1
                if c >= 0:
                    i = c + len(_COMPLETION)
                    if buf[i] == _SPACE:
                        i = _skip_spaces(buf, i, end)
                    j = i
                    while 48 <= buf[j] <= 57:
                        j += 1
                    if j > i:
                        count = int(buf[i:j])
                        tokens = count - self.completion
                        self.completion = count
                        self.continuous = True
                if self.prompt_tokens is None:
                    q = buf.find(_PROMPT, u, end)
                    if q >= 0:
                        self.prompt_tokens = _int_at(buf, q + len(_PROMPT), end)
        elif not text and buf.find(_ERROR, p, end) >= 0 and buf.find(b'"choices"', p, end) < 0:
            self._fail(ErrorClass.HTTP_5XX, f"error event in stream: {buf[p : min(end, p + 200)]!r}")
            return
        if text or tokens > 0:
            n = tokens if tokens > 0 or self.continuous else 1
            if text and (not answer or self.first_answer is None):  # all but the answer's later chunks
                if self.first_token is None:
                    self.first_token = now
                if not answer:
                    self.reasoning_counted += n
                else:
                    self.first_answer = now
                    self.answer_chunk = len(self.chunk_us)
            self.chunk_us.append(int((now - self.sent) * 1e6))
            self.chunk_tokens.append(n)

    def _tool_arguments(self, buf: bytes, q: int, end: int) -> bool:
        """Keep the ``arguments`` pieces of the tool-call deltas in ``buf[q:end]`` by call index;
        False (and the attempt failed) on an unterminated string."""
        a = buf.find(_ARGUMENTS, q, end)
        while a >= 0:
            i = buf.rfind(_INDEX, q, a)
            index = (_int_at(buf, i + len(_INDEX), end) or 0) if i >= 0 else 0
            s = _skip_spaces(buf, a + len(_ARGUMENTS), end)
            if buf[s] != _QUOTE:
                a = buf.find(_ARGUMENTS, s, end)
                continue
            e = _string_end(buf, s, end)
            if e < 0:
                self._fail(ErrorClass.MALFORMED, "unterminated string in event")
                return False
            self.tool_pieces.setdefault(index, []).append(buf[s : e + 1])
            q = e + 1
            a = buf.find(_ARGUMENTS, q, end)
        return True

    def _read_id(self, buf: bytes, p: int, end: int) -> None:
        i = buf.find(_ID, p, end)
        if i >= 0:
            q = _skip_spaces(buf, i + len(_ID), end)
            if buf[q] == _QUOTE:
                e = buf.find(b'"', q + 1, end)
                if e > q:
                    self.response_id = buf[q + 1 : e].decode("ascii", "replace")
                    return
        self.response_id = ""

    @staticmethod
    def _zero_completion(buf: bytes, u: int, end: int) -> bool:
        c = buf.find(_COMPLETION, u, end)
        return c >= 0 and _int_at(buf, c + len(_COMPLETION), end) == 0

    def _final_usage(self, buf: bytes, u: int, end: int) -> None:
        self.usage_seen = True
        c = buf.find(_COMPLETION, u, end)
        if c >= 0:
            self.output_tokens = _int_at(buf, c + len(_COMPLETION), end)
        q = buf.find(_PROMPT, u, end)
        if q >= 0:
            self.prompt_tokens = _int_at(buf, q + len(_PROMPT), end)
        k = buf.find(_CACHED, u, end)
        if k >= 0:
            self.cached_tokens = _int_at(buf, k + len(_CACHED), end)
        r = buf.find(_REASONING_TOKENS, u, end)
        if r >= 0:
            self.reasoning_tokens = _int_at(buf, r + len(_REASONING_TOKENS), end)

    def _fail(self, error: ErrorClass, detail: str) -> None:
        if self.error is None:
            self.error = error.value
            self.error_detail = detail[:300]

    def text(self) -> str:
        """The reply's text (content deltas joined), decoded only now."""
        return "".join(orjson.loads(piece) for piece in self.pieces)

    def reasoning_text(self) -> str:
        """The reasoning's text (reasoning deltas joined), decoded only now."""
        return "".join(orjson.loads(piece) for piece in self.reasoning_pieces)

    def tool_arguments(self) -> list[str]:
        """Each tool call's arguments (its pieces joined), in the order of the calls' indexes."""
        return ["".join(orjson.loads(piece) for piece in self.tool_pieces[i]) for i in sorted(self.tool_pieces)]

    def finish(self) -> tuple[str | None, str | None]:
        """Classify the ended stream: ``(error class or None, detail)``."""
        if self.error is not None:
            return self.error, self.error_detail
        if not self.done and not self.usage_seen:
            return ErrorClass.INCOMPLETE.value, "stream ended without usage or [DONE]"
        if self.first_token is None:
            return ErrorClass.EMPTY.value, "no content in the reply"
        return None, None

    @property
    def estimated(self) -> bool:
        return self.output_tokens is None and not self.continuous

    def reasoning_count(self) -> int:
        """Reasoning tokens: the server's usage details, else the reasoning chunks' tokens."""
        if self.reasoning_tokens is not None:
            return self.reasoning_tokens
        return self.reasoning_counted

    def token_count(self) -> int:
        """Output tokens: the server's final usage, else its running count, else one per chunk."""
        if self.output_tokens is not None:
            return self.output_tokens
        if self.continuous:
            return self.completion
        return len(self.chunk_us)
