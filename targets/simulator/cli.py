"""``finishline simulate`` / ``python -m targets.simulator``: run the simulated LLM server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from pydantic import ValidationError

from targets.simulator.config import PRESETS, build_config, load_overrides


class ConfigError(click.ClickException):
    """Bad options or config: one line, exit code 2."""

    exit_code = 2


def describe(exc: ValidationError) -> str:
    """First problem of a config as ``field: message`` (targets may not import loadgen)."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key; remove it or check its spelling"
    return f"simulator config {loc}: {msg}"


@click.command(
    epilog="\b\nExamples:\n  finishline simulate --port 8000                 # an 8B model on one GPU, by its timings\n"
    "  finishline simulate --preset instant --port 8000 --trace trace.jsonl"
)
@click.option(
    "--preset",
    default="gpu-8b",
    show_default=True,
    type=click.Choice(sorted(PRESETS)),
    help="Performance model to start from.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML file of simulator keys overriding the preset.",
)
@click.option(
    "--trace",
    "trace_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write one JSON line per request (ground truth) to this file.",
)
@click.option("--model", default=None, help="Model name it serves (overrides the preset and --config).")
@click.option(
    "--reuse-port",
    is_flag=True,
    help="Share the port with other simulator processes started so (SO_REUSEPORT): more CPU for one target.",
)
def simulate(
    preset: str,
    host: str,
    port: int,
    config_path: Path | None,
    trace_path: Path | None,
    model: str | None,
    reuse_port: bool,
) -> None:
    """An OpenAI-compatible server that behaves like a continuous-batching engine."""
    from targets.simulator.server import serve

    try:
        overrides = load_overrides(config_path) if config_path else {}
        if model is not None:
            overrides["model"] = model
        config = build_config(preset, overrides)
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        asyncio.run(serve(config, host, port, trace_path, reuse_port))
    except OSError as exc:
        raise ConfigError(str(exc)) from None
