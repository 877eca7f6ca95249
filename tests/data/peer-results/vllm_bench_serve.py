"""Runs ``vllm bench serve`` from a vLLM wheel's own source, without installing vLLM or torch.

``vllm bench serve`` lives in ``vllm/benchmarks/serve.py`` and its request functions in
``vllm/benchmarks/lib/``; these need only aiohttp, numpy and tqdm. What they import from the rest
of vLLM (its dataset samplers and tokenizer loader, which pull in torch and transformers, and a
few small utilities) is replaced here by stand-ins: a dataset of fixed synthetic prompts (as
``--dataset-name random`` gives, ``--random-input-len`` words each) and a whitespace tokenizer
(``vllm bench serve`` counts output tokens from the server's usage when it sends it, as
finishline's simulator does). The benchmark, its metrics and the result file are vLLM's code.

    pip download vllm==0.33.0 --no-deps -d /tmp/vllm && unzip -q /tmp/vllm/*.whl 'vllm/*' -d /tmp/vllm/src
    python tests/data/peer-results/vllm_bench_serve.py /tmp/vllm/src -- --base-url http://127.0.0.1:PORT ...

(arguments after ``--`` are ``vllm bench serve``'s own).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import re
import sys
import types
from pathlib import Path
from typing import Any


def _module(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


def _package(name: str, path: Path) -> None:
    _module(name, __path__=[str(path)])


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@dataclasses.dataclass
class SampleRequest:  # the fields of vllm.benchmarks.datasets.SampleRequest that serve.py reads
    prompt: Any
    prompt_len: int
    expected_output_len: int = 0
    multi_modal_data: Any = None
    lora_request: Any = None
    request_id: str | None = None
    timestamp: float | None = None
    chat_messages: list[dict[str, Any]] | None = None
    request_overrides: dict[str, Any] | None = None


class WhitespaceTokenizer:
    @dataclasses.dataclass
    class Encoded:
        input_ids: list[int]

    def __call__(self, text: str, add_special_tokens: bool = False) -> Encoded:
        return self.Encoded(list(range(len(text.split()))))


WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
]


def add_dataset_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--dataset-name", default="random")
    parser.add_argument("--dataset-path", default=None)
    parser.add_argument("--num-prompts", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--random-input-len", type=int, default=64)
    parser.add_argument("--random-output-len", type=int, default=128)


def get_samples(args: argparse.Namespace, tokenizer: Any) -> list[SampleRequest]:
    n = args.random_input_len
    return [
        SampleRequest(
            prompt=f"{i} " + " ".join(WORDS[(i + k) % len(WORDS)] for k in range(n - 1)),
            prompt_len=n,
            expected_output_len=args.random_output_len,
            request_id=f"bench-{i}",
        )
        for i in range(args.num_prompts)
    ]


def install(src: Path) -> types.ModuleType:
    """vLLM's benchmark modules from ``src`` (an unpacked wheel), with stand-ins for the rest of vLLM."""
    vllm = src / "vllm"
    _package("vllm", vllm)
    _package("vllm.benchmarks", vllm / "benchmarks")
    _package("vllm.benchmarks.lib", vllm / "benchmarks" / "lib")
    _package("vllm.utils", vllm / "utils")
    _module("regex", **{k: getattr(re, k) for k in dir(re) if not k.startswith("__")})  # pattern use only
    _module("vllm.logger", init_logger=logging.getLogger)
    _module("vllm.benchmarks.datasets", SampleRequest=SampleRequest, add_dataset_parser=add_dataset_parser,
            get_samples=get_samples)  # fmt: skip
    _module("vllm.tokenizers", TokenizerLike=object, get_tokenizer=lambda *a, **k: WhitespaceTokenizer())
    _module("vllm.utils.argparse_utils", FlexibleArgumentParser=argparse.ArgumentParser)
    _module("vllm.utils.gc_utils", freeze_gc_heap=lambda: None)
    _module("vllm.utils.network_utils", join_host_port=lambda host, port: f"{host}:{port}")
    for name in ("endpoint_request_func", "ready_checker", "utils"):
        _load(f"vllm.benchmarks.lib.{name}", vllm / "benchmarks" / "lib" / f"{name}.py")
    return _load("vllm.benchmarks.serve", vllm / "benchmarks" / "serve.py")


def main() -> None:
    src, rest = Path(sys.argv[1]), sys.argv[sys.argv.index("--") + 1 :]
    serve = install(src)
    parser = argparse.ArgumentParser(prog="vllm bench serve")
    serve.add_cli_args(parser)
    serve.main(parser.parse_args(rest))


if __name__ == "__main__":
    main()
