"""The OpenAI/vLLM request bodies the simulator accepts, and its non-streaming answers.

Unknown request fields are ignored (clients send temperature, top_p, seed ...); the fields
the simulator uses are validated and a bad one is answered with a one-line 400.
"""

from __future__ import annotations

import math
import random
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from targets.simulator import tokenizer
from targets.simulator.config import SimulatorConfig, TokenCount
from targets.simulator.sequence import Sequence
from targets.simulator.sse import base, tool_call_id, usage


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(Lenient):
    include_usage: bool = False
    continuous_usage_stats: bool = False


class ContentPart(Lenient):
    type: str
    text: str | None = None


class Message(Lenient):
    role: str = Field(min_length=1)
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if p.text is not None)


class GenerationRequest(Lenient):
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    min_tokens: int = Field(0, ge=0)
    ignore_eos: bool = False
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1)


class ToolFunction(Lenient):
    name: str = Field(min_length=1)
    parameters: dict[str, Any] | None = None


class ToolDef(Lenient):
    type: str = "function"
    function: ToolFunction


class NamedToolChoice(Lenient):
    function: ToolFunction


class ChatRequest(GenerationRequest):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[ToolDef] | None = None
    tool_choice: str | NamedToolChoice | None = None

    def tool_to_call(self) -> ToolDef | None:
        """The tool this request's answer calls: the one ``tool_choice`` names, else the first;
        None without tools or with ``tool_choice: none``."""
        if not self.tools or self.tool_choice == "none":
            return None
        if isinstance(self.tool_choice, NamedToolChoice):
            named = self.tool_choice.function.name
            return next((t for t in self.tools if t.function.name == named), self.tools[0])
        return self.tools[0]


def tool_argument(tool: ToolDef) -> str:
    """The argument the simulated call fills: the tool's first declared parameter, else ``input``."""
    properties = (tool.function.parameters or {}).get("properties")
    if isinstance(properties, dict) and properties:
        return str(next(iter(properties)))
    return "input"


class CompletionRequest(GenerationRequest):
    prompt: str | list[str] | list[int] | list[list[int]]


class BadRequest(ValueError):
    """One line for a 400 answer."""


def parse(api: str, raw: bytes) -> ChatRequest | CompletionRequest:
    model = ChatRequest if api == "chat" else CompletionRequest
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["type"] == "json_invalid":
            raise BadRequest("request body is not valid JSON") from None
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        msg = "required; add it" if err["type"] == "missing" else err["msg"]
        if loc == "n":
            msg = "the simulator answers n=1 only"
        raise BadRequest(f"{loc}: {msg}") from None


def prompt_tokens(req: ChatRequest | CompletionRequest, cfg: SimulatorConfig) -> list[str]:
    """The prompt's token strings (see targets.simulator.tokenizer)."""
    if isinstance(req, ChatRequest):
        pairs = [(m.role, m.text()) for m in req.messages]
        return tokenizer.chat_tokens(pairs, cfg.chat_message_overhead_tokens, cfg.chat_reply_overhead_tokens)
    prompt = req.prompt
    if isinstance(prompt, str):
        return tokenizer.tokens(prompt)
    first = prompt[0] if prompt else None
    if isinstance(first, (list, str)):  # a batch of prompts (text or token ids)
        if len(prompt) != 1:
            raise BadRequest("prompt: the simulator answers one prompt per request")
        return tokenizer.tokens(first) if isinstance(first, str) else [str(t) for t in first]
    return [str(t) for t in prompt]  # a list of token ids


def prompt_text(req: ChatRequest | CompletionRequest) -> str:
    """The prompt as text, for the trace: a chat's message texts one a line; token ids as numbers."""
    if isinstance(req, ChatRequest):
        return "\n".join(m.text() for m in req.messages)
    prompt = req.prompt
    return prompt if isinstance(prompt, str) else orjson.dumps(prompt).decode()


def block_hashes(tokens: list[str], block_size: int) -> list[int]:
    """Chained hashes of the prompt's full blocks: equal prefixes give equal leading hashes."""
    out: list[int] = []
    h = 0
    for i in range(0, len(tokens) - block_size + 1, block_size):
        h = hash((h, tuple(tokens[i : i + block_size])))
        out.append(h)
    return out


class OutputPlanner:
    """How many tokens each request gets: max_tokens, or a draw from the configured distribution."""

    def __init__(self, cfg: SimulatorConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed + 1)
        self.reasoning_rng = random.Random(cfg.seed + 2)  # its own stream: output lengths stay as without reasoning
        self.limit = min(cfg.max_model_len, cfg.kv_capacity_tokens)

    def plan(self, req: ChatRequest | CompletionRequest, prompt_len: int) -> tuple[int, int]:
        """``(max_tokens, target)``; raises BadRequest when the request cannot fit."""
        cfg = self.cfg
        asked = req.max_completion_tokens if isinstance(req, ChatRequest) else None
        asked = asked or req.max_tokens
        if prompt_len < 1:
            raise BadRequest("prompt: empty; give at least one token")
        room = self.limit - prompt_len
        if room < 1:
            raise BadRequest(
                f"messages/prompt: {prompt_len} prompt tokens exceed the model's context of"
                f" {self.limit} tokens; shorten the prompt"
            )
        max_tokens = asked if asked is not None else min(cfg.default_max_tokens, room)
        if max_tokens > room:
            raise BadRequest(
                f"max_tokens: this model's maximum context length is {self.limit} tokens, but"
                f" {prompt_len + max_tokens} were requested ({prompt_len} in the prompt,"
                f" {max_tokens} in the completion); reduce max_tokens or the prompt"
            )
        if req.min_tokens > max_tokens:
            raise BadRequest(f"min_tokens: {req.min_tokens} exceeds max_tokens {max_tokens}")
        dist = cfg.output_tokens
        if req.ignore_eos or dist is None:
            return max_tokens, max_tokens
        n = min(max(draw(dist, self.rng), req.min_tokens), max_tokens)
        return max_tokens, n

    def reasoning(self, req: ChatRequest | CompletionRequest) -> int:
        """Reasoning tokens before the answer: drawn for a chat request when the model reasons, else 0.
        They are part of the output (``max_tokens`` bounds both, as on vLLM)."""
        dist = self.cfg.reasoning_tokens
        if dist is None or not isinstance(req, ChatRequest):
            return 0
        return draw(dist, self.reasoning_rng)


def draw(dist: TokenCount, rng: random.Random) -> int:
    """One draw of ``dist``, rounded and clamped to its ``min``..``max``."""
    if dist.distribution == "fixed":
        x = dist.mean
    elif dist.distribution == "uniform":
        x = rng.uniform(dist.mean - dist.stddev, dist.mean + dist.stddev)
    elif dist.distribution == "normal":
        x = rng.gauss(dist.mean, dist.stddev)
    else:
        sigma2 = math.log(1.0 + (dist.stddev / dist.mean) ** 2)
        x = rng.lognormvariate(math.log(dist.mean) - sigma2 / 2, math.sqrt(sigma2))
    return min(max(round(x), dist.min, 1), dist.max)


def full_body(seq: Sequence) -> bytes:
    """The non-streaming response of a finished sequence."""
    words = [tokenizer.VOCAB[i % len(tokenizer.VOCAB)] for i in range(seq.out)]
    reasoning = min(seq.reasoning, seq.out)
    text = "".join(words[reasoning:])
    body = base(seq)
    if seq.api == "chat":
        body["object"] = "chat.completion"
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if seq.reasoning:
            message["reasoning_content"] = "".join(words[:reasoning])
        if seq.tool_name is not None and text:
            message["content"] = None
            arguments = seq.tool_arguments(text).decode()
            call = {
                "id": tool_call_id(seq),
                "type": "function",
                "function": {"name": seq.tool_name, "arguments": arguments},
            }
            message["tool_calls"] = [call]
        body["choices"] = [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": seq.finish_reason,
                "stop_reason": None,
            }
        ]
    else:
        body["choices"] = [
            {"index": 0, "text": text, "logprobs": None, "finish_reason": seq.finish_reason, "stop_reason": None}
        ]
    body["usage"] = usage(seq.prompt_len, seq.out, seq.cached_tokens, reasoning if seq.reasoning else None)
    return orjson.dumps(body)


def error_body(status: int, message: str, kind: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "code": status}})


def model_list(cfg: SimulatorConfig, created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": cfg.model,
                "object": "model",
                "created": created,
                "owned_by": "finishline",
                "root": cfg.model,
                "parent": None,
                "max_model_len": cfg.max_model_len,
            }
        ],
    }
