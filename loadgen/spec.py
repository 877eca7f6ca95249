"""What a scenario declares about traffic: workloads, prompt sources, arrival, retries.

Plain data (pydantic, ``extra="forbid"``) that the coordinator's scenario file embeds and the
workers receive through ``loadgen.config.WorkerConfig``. Everything is validated before any
traffic is sent, and each problem names its field (``workloads[0].prompt.path: ...``).
Sampling lives next to each declaration so that the same seed gives the same traffic. Token
lengths are drawn by :mod:`loadgen.lengths`; the base of every declaration is
:class:`loadgen.declaration.Spec`.
"""

from __future__ import annotations

import functools
import random
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from loadgen.declaration import Spec, readable_file
from loadgen.lengths import LengthDistribution
from loadgen.records import ERROR_CLASSES

# ---------------------------------------------------------------- prompt sources


class SharedPrefix(Spec):
    """A system prompt shared by every request of a group, as apps with a common preamble send."""

    groups: int = Field(default=1, ge=1)
    tokens: int = Field(ge=1)


class SyntheticPrompt(Spec):
    """Text drawn from the shipped corpus, ``tokens`` long (approximately, by the corpus's count)."""

    kind: Literal["synthetic"]
    tokens: LengthDistribution


class JsonlPrompt(Spec):
    """The user's own requests: one JSON object per line with OpenAI ``messages``, optional ``max_tokens``."""

    kind: Literal["jsonl"]
    path: Path
    shuffle: bool = True

    _path = field_validator("path")(readable_file)


class ShareGPTPrompt(Spec):
    """ShareGPT conversations (``conversations: [{from: human|gpt, value}]``).

    Single requests use the first human turn; sessions replay the human turns in order.
    ``reference_output`` asks for as many tokens as the recorded reply had, as vLLM does.
    """

    kind: Literal["sharegpt"]
    path: Path
    shuffle: bool = True
    reference_output: bool = True

    _path = field_validator("path")(readable_file)


class LongContextPrompt(Spec):
    """A long document filled to ``tokens`` from a corpus, followed by a question about it."""

    kind: Literal["long_context"]
    tokens: LengthDistribution
    question: str = "Summarise the document above in three sentences."
    corpus: Path | None = None  # default: the corpus shipped in loadgen/data

    @field_validator("corpus")
    @classmethod
    def _corpus(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else readable_file(value, info)


class TracePrompt(Spec):
    """A published request trace (``loadgen.traces``): each row's input and output length, and its
    time, which a ``replay`` phase keeps. Mooncake rows share the text of shared ``hash_ids``
    (``block_size`` tokens each); BurstGPT rows may be kept to one ``model`` and ``log_type``."""

    kind: Literal["trace"]
    path: Path
    format: Literal["mooncake", "azure", "burstgpt"]
    block_size: int = Field(default=512, ge=1, description="mooncake: prompt tokens per hash id")
    model: str | None = Field(default=None, min_length=1, description="burstgpt: keep only rows of this Model")
    log_type: str | None = Field(default=None, min_length=1, description="burstgpt: keep only rows of this Log Type")

    _path = field_validator("path")(readable_file)

    @model_validator(mode="after")
    def _options_of_the_format(self) -> TracePrompt:
        if self.format != "burstgpt" and (self.model is not None or self.log_type is not None):
            raise ValueError("model and log_type filter BurstGPT traces only; remove them")
        if self.format != "mooncake" and self.block_size != 512:  # the default is written out in a worker's config
            raise ValueError("block_size applies to Mooncake traces (their hash_ids) only; remove it")
        return self


PromptSource = Annotated[
    SyntheticPrompt | JsonlPrompt | ShareGPTPrompt | LongContextPrompt | TracePrompt,
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------- sessions and chains


class ThinkTime(Spec):
    """Seconds a person waits between turns: uniform in [min, max]."""

    min: float = Field(default=0.0, ge=0)
    max: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ThinkTime:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.min, self.max) if self.max > self.min else self.min


class SessionSpec(Spec):
    """A multi-turn conversation: each turn sends the whole history plus a new user message."""

    turns: LengthDistribution
    think_time: ThinkTime = ThinkTime()
    max_history_tokens: int | None = Field(default=None, ge=1)  # drop oldest turns beyond this


TEMPLATE_REF = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")
CHAIN_INPUT = "input"


class ToolFunction(Spec):
    """A function the model may call, as OpenAI's ``tools[].function`` declares it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None  # the JSON Schema of its arguments
    strict: bool | None = None


class Tool(Spec):
    """One entry of the request's ``tools`` array (OpenAI's chat completions API)."""

    type: Literal["function"] = "function"
    function: ToolFunction


Tools = Annotated[list[Tool], Field(min_length=1)]


def tools_body(tools: list[Tool] | None) -> list[dict[str, Any]] | None:
    """The ``tools`` array as sent (unset fields left out)."""
    return None if tools is None else [t.model_dump(exclude_none=True) for t in tools]


class ChainStep(Spec):
    """One call of a chain. ``prompt`` may reference ``{{input}}`` and earlier steps' outputs ``{{id}}``.

    A step's output is its reply's text, then the arguments (JSON) of each tool call it made, one
    per line: with ``tools``, the next step's prompt carries what the model asked a tool to do.
    """

    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    prompt: str
    after: list[str] | None = None  # default: the steps the template references
    output: LengthDistribution | None = None
    tools: Tools | None = None  # sent with this step (replacing the workload's)

    def dependencies(self) -> list[str]:
        if self.after is not None:
            return list(self.after)
        return [r for r in dict.fromkeys(TEMPLATE_REF.findall(self.prompt)) if r != CHAIN_INPUT]


class ChainSpec(Spec):
    """A small DAG of calls: steps whose dependencies are done run concurrently (fan-out), a step
    depending on several joins them."""

    steps: list[ChainStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid_dag(self) -> ChainSpec:
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError(f"step ids must be unique, got {ids}")
        if CHAIN_INPUT in ids:
            raise ValueError(f"'{CHAIN_INPUT}' is reserved for the chain's input; rename that step")
        known = set(ids)
        for step in self.steps:
            for ref in TEMPLATE_REF.findall(step.prompt):
                if ref != CHAIN_INPUT and ref not in known:
                    raise ValueError(f"step {step.id!r} references unknown step {ref!r}")
            for dep in step.dependencies():
                if dep not in known:
                    raise ValueError(f"step {step.id!r} waits for unknown step {dep!r}")
        self.order()  # raises on a cycle
        return self

    def order(self) -> list[list[ChainStep]]:
        """Steps in waves: every step of a wave has all its dependencies in earlier waves."""
        done: set[str] = set()
        remaining = list(self.steps)
        waves: list[list[ChainStep]] = []
        while remaining:
            wave = [s for s in remaining if set(s.dependencies()) <= done]
            if not wave:
                raise ValueError(f"steps {[s.id for s in remaining]} form a cycle")
            waves.append(wave)
            done |= {s.id for s in wave}
            remaining = [s for s in remaining if s.id not in done]
        return waves


# ---------------------------------------------------------------- workloads


class SamplingParams(Spec):
    """Sampling fields sent in the request body; ``extra_body`` passes anything else through."""

    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    ignore_eos: bool | None = None  # vLLM / llama.cpp: produce exactly max_tokens
    stop: list[str] | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)


class WorkloadSpec(Spec):
    """One kind of traffic; a run mixes several by ``weight``."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    weight: float = Field(default=1.0, gt=0)
    api: Literal["chat", "completions"] = "chat"
    stream: bool = True
    prompt: PromptSource
    output: LengthDistribution | None = None  # max_tokens; None: the dataset's, else the server's default
    system_prefix: SharedPrefix | None = None
    session: SessionSpec | None = None
    chain: ChainSpec | None = None
    sampling: SamplingParams = SamplingParams()
    headers: dict[str, str] = Field(default_factory=dict)  # extra request headers of this workload
    tools: Tools | None = None  # sent with every request (chat only); a chain step's own replace them

    @model_validator(mode="after")
    def _one_shape(self) -> WorkloadSpec:
        if self.session is not None and self.chain is not None:
            raise ValueError("a workload is either a session or a chain; split it into two workloads")
        if (self.session or self.chain) and self.api != "chat":
            raise ValueError("sessions and chains need api: chat")
        if self.tools is not None and self.api != "chat":
            raise ValueError("tools need api: chat")
        if (self.session or self.chain) and self.prompt.kind == "trace":
            raise ValueError("a trace replays single requests; remove session or chain")
        return self

    @functools.cached_property
    def request_sampling(self) -> SamplingParams:
        """What the requests send: a trace's rows ask for exactly their output length (``ignore_eos``),
        unless ``sampling.ignore_eos`` says otherwise."""
        if self.prompt.kind == "trace" and self.sampling.ignore_eos is None:
            return self.sampling.model_copy(update={"ignore_eos": True})
        return self.sampling


# ---------------------------------------------------------------- arrival and retries


class ArrivalSpec(Spec):
    """How requests arrive in an open phase (``closed``: each user sends when its last reply ended).

    ``gamma`` follows vLLM's burstiness: shape = burstiness, mean gap = 1/rate; 1 is Poisson,
    below 1 burstier, above 1 more regular. A ramp rises linearly from ``ramp_from`` x rate.
    """

    kind: Literal["closed", "constant", "poisson", "gamma"] = "closed"
    burstiness: float = Field(default=1.0, gt=0)
    ramp_seconds: float = Field(default=0.0, ge=0)
    ramp_from: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _burstiness_only_for_gamma(self) -> ArrivalSpec:
        if self.burstiness != 1.0 and self.kind != "gamma":
            raise ValueError("burstiness applies to kind: gamma only")
        return self


RetryableError = Literal[ERROR_CLASSES]  # type: ignore[valid-type]


class RetryPolicy(Spec):
    """When and how a failed attempt is sent again. Every attempt is recorded.

    Waits grow exponentially (``backoff_initial`` x ``backoff_multiplier``^(n-1), capped at
    ``backoff_max``) with up to ``jitter`` of that added at random; a server's ``Retry-After``
    wins when it asks for longer. ``deadline`` bounds the whole logical request.
    """

    max_attempts: int = Field(default=1, ge=1, le=100)
    backoff_initial: float = Field(default=0.5, ge=0)
    backoff_multiplier: float = Field(default=2.0, ge=1)
    backoff_max: float = Field(default=30.0, ge=0)
    jitter: float = Field(default=0.1, ge=0, le=1)
    honour_retry_after: bool = True
    max_retry_after: float = Field(default=120.0, ge=0)
    retry_on_status: list[Annotated[int, Field(ge=400, le=599)]] = Field(default=[429, 500, 502, 503, 504])
    retry_on_errors: list[RetryableError] = Field(default=["timeout", "connect_error", "reset"])
    attempt_timeout: float | None = Field(default=600.0, gt=0)
    deadline: float | None = Field(default=None, gt=0)
