"""Simulator configuration: one pydantic model, the same keys in YAML files and Python dicts.

A preset is a dict of these keys; a ``--config`` file (or the fixture's dict) overrides
the preset key by key, so a test only states what it changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FAULT_KINDS: tuple[str, ...] = ("429", "503", "500", "reset", "malformed", "stall", "cut")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenCount(Strict):
    """A distribution of token counts, drawn per request (clamped to ``min``..``max``)."""

    distribution: Literal["fixed", "uniform", "normal", "lognormal"] = "fixed"
    mean: float = Field(128.0, gt=0)
    stddev: float = Field(0.0, ge=0)  # normal/lognormal spread; uniform: half-width
    min: int = Field(1, ge=1)
    max: int = Field(1_000_000, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> TokenCount:
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class OutputLength(TokenCount):
    """Distribution of output lengths for requests that do not set ``ignore_eos``."""


class ToolCalls(Strict):
    """How a chat request that carries ``tools`` is answered (unless its ``tool_choice`` is ``none``).

    The answer is one call of the first tool (or the one ``tool_choice`` names) instead of
    content: its arguments are the JSON object ``{"<the tool's first parameter, else input>":
    "<the answer's words>"}``, one piece per answer token, as vLLM's tool parsers stream them.
    """

    enabled: bool = True  # false: answer with content, as if no tools were sent


class Faults(Strict):
    """Faults drawn per request by rate (0..1 each); a request header can force one."""

    rates: dict[str, float] = Field(default_factory=dict)
    after_tokens: int = Field(2, ge=0)  # mid-stream faults strike after this many tokens
    stall_seconds: float = Field(5.0, ge=0)  # stall length when drawn by rate
    retry_after_seconds: int = Field(1, ge=0)  # Retry-After of injected 429s

    @field_validator("rates")
    @classmethod
    def _check_rates(cls, rates: dict[str, float]) -> dict[str, float]:
        for kind, rate in rates.items():
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault {kind!r}; use one of {', '.join(FAULT_KINDS)}")
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate of {kind!r} must be between 0 and 1")
        if sum(rates.values()) > 1.0:
            raise ValueError("fault rates add up to more than 1")
        return rates


class SimulatorConfig(Strict):
    """Every knob of the simulated server (see docs/simulator.md for the model)."""

    model: str = "finishline-sim"
    # scheduler and KV cache (vLLM's names)
    max_num_seqs: int = Field(256, ge=1)
    max_num_batched_tokens: int = Field(8192, ge=1)
    num_kv_blocks: int = Field(28000, ge=1)
    block_size: int = Field(16, ge=1)
    max_model_len: int = Field(32768, ge=2)
    enable_prefix_caching: bool = True
    # blocks the prefix cache remembers (default num_kv_blocks, as vLLM's cache lives in the KV
    # blocks); a smaller number bounds the simulator's memory when num_kv_blocks is huge ("instant")
    prefix_cache_blocks: int | None = Field(None, ge=1)
    # step time = step_overhead_s + prefill_token_s * prefill tokens
    #           + decode_seq_s * decoding sequences + context_token_s * context tokens in the batch
    step_overhead_s: float = Field(0.009, ge=0)
    prefill_token_s: float = Field(5e-5, ge=0)
    decode_seq_s: float = Field(2e-5, ge=0)
    context_token_s: float = Field(2e-8, ge=0)
    jitter: float = Field(0.0, ge=0, le=1)  # relative stddev of each step time
    # a leak (soak tests): each step takes this many seconds longer per minute the engine has run
    leak_step_s_per_min: float = Field(0.0, ge=0)
    seed: int = 0
    # outputs
    default_max_tokens: int = Field(256, ge=1)
    output_tokens: OutputLength | None = None  # None: generate until max_tokens
    tokens_per_chunk: int = Field(1, ge=1)
    chat_message_overhead_tokens: int = Field(4, ge=0)
    chat_reply_overhead_tokens: int = Field(3, ge=0)
    # a reasoning model: this many reasoning tokens (``delta.reasoning_content``) before each chat
    # answer, counted in completion_tokens and in usage.completion_tokens_details.reasoning_tokens
    reasoning_tokens: TokenCount | None = None
    tool_calls: ToolCalls = Field(default_factory=ToolCalls)
    trace_prompts: bool = False  # the trace keeps each request's prompt text (tests of what was sent)
    # life cycle and faults
    startup_seconds: float = Field(0.0, ge=0)
    faults: Faults = Field(default_factory=Faults)

    @property
    def kv_capacity_tokens(self) -> int:
        return self.num_kv_blocks * self.block_size


PRESETS: dict[str, dict[str, Any]] = {
    # An 8B model in bf16 on one H100 under vLLM: TTFT tens of ms, ITL ~10-15 ms at moderate load.
    "gpu-8b": {},
    # A ~270M model on two CPU cores under llama.cpp: ~40 tok/s alone, ~70 tok/s with 4 slots.
    "cpu-small": {
        "max_num_seqs": 4,
        "max_num_batched_tokens": 512,
        "num_kv_blocks": 512,
        "max_model_len": 8192,
        "step_overhead_s": 0.025,
        "prefill_token_s": 0.005,
        "decode_seq_s": 0.008,
        "context_token_s": 1e-6,
    },
    # Near-zero step time: measures the client, not the model.
    "instant": {
        "max_num_seqs": 2048,
        "max_num_batched_tokens": 1_000_000,
        "num_kv_blocks": 4_000_000,
        "max_model_len": 1_000_000,
        "prefix_cache_blocks": 100_000,  # ~15 MB: an hours-long soak does not grow to 600 MB of cache
        "step_overhead_s": 0.0005,
        "prefill_token_s": 0.0,
        "decode_seq_s": 0.0,
        "context_token_s": 0.0,
    },
}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override``'s keys over it, mapping by mapping (a fault rate set leaves the others)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def build_config(preset: str = "gpu-8b", overrides: dict[str, Any] | None = None) -> SimulatorConfig:
    """The preset's values overridden by ``overrides`` (raises ValueError / ValidationError)."""
    if preset not in PRESETS:
        raise ValueError(f"--preset: unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    return SimulatorConfig.model_validate(merge(PRESETS[preset], overrides or {}))


def load_overrides(path: Path) -> dict[str, Any]:
    """Read a YAML config file: a mapping of SimulatorConfig keys."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ValueError(f"--config: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"--config: {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"--config: {path} must hold a mapping of simulator keys")
    return data
