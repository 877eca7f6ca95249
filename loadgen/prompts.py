"""Turning a workload's prompt source into the messages of real requests.

Datasets are read once per worker and checked line by line, so a bad line is reported with
its field, file and line number before traffic starts (``load_source`` is also what the
coordinator's ``validate`` calls). Every draw takes the caller's ``random.Random``, so a seed
reproduces the traffic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loadgen.corpus import DEFAULT_CORPUS, Corpus, count_tokens, estimate_tokens, remember_count
from loadgen.errors import UserError
from loadgen.spec import (
    JsonlPrompt,
    LongContextPrompt,
    PromptSource,
    SharedPrefix,
    ShareGPTPrompt,
    SyntheticPrompt,
    TracePrompt,
    WorkloadSpec,
)
from loadgen.traces import TraceRow, TraceText, read_trace

Message = dict[str, str]


@dataclass(slots=True)
class Conversation:
    """What one unit of traffic starts from: the first request's messages, and for replayed
    conversations the later user turns with their reference reply lengths."""

    messages: list[Message]
    max_tokens: int | None = None
    followups: list[tuple[str, int | None]] = field(default_factory=list)


def _read_lines(path: Path, where: str) -> list[Any]:
    """JSON Lines, or one JSON array (ShareGPT files are usually an array)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{where}: cannot read {path}: {exc.strerror}") from None
    if raw.lstrip()[:1] == b"[":
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UserError(f"{where}: {path} is not valid JSON ({exc})") from None
        return list(items)
    out = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            raise UserError(f"{where}: {path} line {number} is not valid JSON; fix or remove it") from None
    return out


def _jsonl_items(source: JsonlPrompt, where: str) -> list[Conversation]:
    items = []
    for number, obj in enumerate(_read_lines(source.path, where), 1):
        messages = obj.get("messages") if isinstance(obj, dict) else None
        if (
            not isinstance(messages, list)
            or not messages
            or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages
            )
        ):
            raise UserError(
                f'{where}: {source.path} line {number} needs "messages": a list of {{role, content}} objects'
            )
        max_tokens = obj.get("max_tokens", obj.get("max_completion_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise UserError(f"{where}: {source.path} line {number}: max_tokens must be a positive integer")
        items.append(Conversation([{"role": m["role"], "content": m["content"]} for m in messages], max_tokens))
    if not items:
        raise UserError(f"{where}: {source.path} has no requests")
    return items


def _sharegpt_items(source: ShareGPTPrompt, where: str) -> list[Conversation]:
    items = []
    for obj in _read_lines(source.path, where):
        turns = obj.get("conversations") if isinstance(obj, dict) else None
        if not isinstance(turns, list):
            continue
        humans: list[tuple[str, int | None]] = []
        for i, turn in enumerate(turns):
            if not isinstance(turn, dict) or turn.get("from") not in ("human", "user"):
                continue
            text = turn.get("value")
            if not isinstance(text, str) or not text.strip():
                continue
            reply = turns[i + 1] if i + 1 < len(turns) and isinstance(turns[i + 1], dict) else {}
            reply_text = reply.get("value") if reply.get("from") in ("gpt", "assistant") else None
            length = count_tokens(reply_text) if source.reference_output and isinstance(reply_text, str) else None
            humans.append((text, max(1, length) if length is not None else None))
        if humans:
            first, first_len = humans[0]
            items.append(Conversation([{"role": "user", "content": first}], first_len, humans[1:]))
    if not items:
        raise UserError(f"{where}: {source.path} has no conversations with a human turn (ShareGPT format)")
    return items


def load_source(source: PromptSource, where: str = "prompt") -> list[Conversation] | None:
    """The dataset's conversations, or None for generated sources and traces (a trace is read and
    checked here too; its rows' text is made when each is sent). Raises UserError naming ``where``."""
    if isinstance(source, JsonlPrompt):
        return _jsonl_items(source, f"{where}.path")
    if isinstance(source, ShareGPTPrompt):
        return _sharegpt_items(source, f"{where}.path")
    if isinstance(source, TracePrompt):
        read_trace(source, f"{where}.path")
    return None


class PromptFactory:
    """Draws conversations and new user turns for one workload."""

    def __init__(self, workload: WorkloadSpec, seed: int = 0, where: str = "prompt") -> None:
        self.workload = workload
        self.source = workload.prompt
        self.items = load_source(self.source, where)
        self._order: list[int] = []
        corpus_path = self.source.corpus if isinstance(self.source, LongContextPrompt) else None
        self.corpus = Corpus.load(corpus_path or DEFAULT_CORPUS)
        self.trace: tuple[TraceRow, ...] | None = None
        if isinstance(self.source, TracePrompt):
            self.trace = read_trace(self.source, f"{where}.path")
            self._trace_text = TraceText(self.corpus, self.source.block_size, seed)
            self._next_row = 0
        self.prefixes = self._prefixes(workload.system_prefix, seed)
        question = self.source.question if isinstance(self.source, LongContextPrompt) else ""
        self._question = (f"\n\n{question}", count_tokens(question))

    def _prefixes(self, spec: SharedPrefix | None, seed: int) -> list[str]:
        if spec is None:
            return []
        rng = random.Random(f"{seed}:{self.workload.name}:prefix")
        return [self.corpus.sample(spec.tokens, rng) for _ in range(spec.groups)]

    def system_message(self, rng: random.Random) -> Message | None:
        """The shared prefix of a randomly chosen group (the same text for every request in it)."""
        if not self.prefixes:
            return None
        return {"role": "system", "content": rng.choice(self.prefixes)}

    def _dataset_item(self, rng: random.Random) -> Conversation:
        assert self.items is not None
        shuffle = getattr(self.source, "shuffle", True)
        if not self._order:
            self._order = list(range(len(self.items)))
            if shuffle:
                rng.shuffle(self._order)
            self._order.reverse()
        return self.items[self._order.pop()]

    def user_turn(self, rng: random.Random) -> str:
        """A fresh user message (synthetic or long-context sources; datasets give their next item)."""
        src = self.source
        if isinstance(src, SyntheticPrompt):
            return self.corpus.sample(src.tokens.sample(rng), rng)
        if isinstance(src, LongContextPrompt):  # counted from its parts: never scanned in the hot path
            tokens = src.tokens.sample(rng)
            question, question_tokens = self._question
            return remember_count(self.corpus.sample(tokens, rng) + question, tokens + question_tokens)
        if self.trace is not None:
            return self._trace_row(None).messages[-1]["content"]
        return self._dataset_item(rng).messages[-1]["content"]

    def _trace_row(self, row: int | None) -> Conversation:
        """Trace row ``row`` (a replay's), or else the next one in time order, round and round (a
        phase that is not a replay sends the trace's requests without its times)."""
        assert self.trace is not None
        if row is None:
            row, self._next_row = self._next_row, (self._next_row + 1) % len(self.trace)
        item = self.trace[row]
        text = self._trace_text.prompt(item, row)
        return Conversation([{"role": "user", "content": text}], max(1, item.output_tokens))

    def conversation(self, rng: random.Random, row: int | None = None) -> Conversation:
        """The start of one unit of traffic, system prefix included, max_tokens decided; ``row``:
        the trace row a replay sends."""
        if self.trace is not None:
            conv = self._trace_row(row)
        elif self.items is not None:
            item = self._dataset_item(rng)
            conv = Conversation(list(item.messages), item.max_tokens, list(item.followups))
        else:
            conv = Conversation([{"role": "user", "content": self.user_turn(rng)}])
        system = self.system_message(rng)
        if system is not None:
            conv.messages.insert(0, system)
        conv.max_tokens = self.max_tokens(rng, conv.max_tokens)
        return conv

    def max_tokens(self, rng: random.Random, reference: int | None) -> int | None:
        if self.workload.output is not None:
            return self.workload.output.sample(rng)
        return reference


def as_completion_prompt(messages: list[Message]) -> str:
    """The completions API takes one string: the messages' contents joined by blank lines."""
    return "\n\n".join(m["content"] for m in messages)


def estimated_prompt_tokens(messages: list[Message]) -> int:
    return sum(estimate_tokens(m["content"]) for m in messages)
