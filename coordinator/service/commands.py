"""``finishline serve``: the service on 127.0.0.1 unless told, with its state under the runs directory."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from coordinator.run.ownership import STATE_ENV
from coordinator.service.access import TOKEN_ENV

if TYPE_CHECKING:
    from coordinator.services.redis_server import RedisServer

EPILOG = f"""
\b
The bearer token comes from ${TOKEN_ENV} or --token-file; every endpoint but /health needs it.
Everything the service writes is under --runs-dir: each run's folder, the baselines
(baselines/), its Redis's append-only file and the runs' ledgers (.service/). The only files
a submitted scenario may name are under --data-dir (relative names are relative to it).

\b
Example:
  {TOKEN_ENV}=$(openssl rand -hex 16) finishline serve --port 8700 \\
      --allow-url 'http://127.0.0.1:*' --allow-image 'finishline/*'
"""


@click.command(epilog=EPILOG)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless told).")
@click.option("--port", type=click.IntRange(1, 65535), default=8700, show_default=True)
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("service-runs"),
    show_default=True,
    help="Where runs, baselines and the service's state are written (nothing is written elsewhere).",
)
@click.option(
    "--redis-url", help="Keep run state in this Redis; default: a private redis-server persisting under --runs-dir."
)
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help=f"Read the bearer token here, not ${TOKEN_ENV}.",
)
@click.option(
    "--allow-image", "images", multiple=True, help="An image pattern (shell-style) a submitted scenario may start."
)
@click.option(
    "--allow-url", "urls", multiple=True, help="A base-URL pattern (shell-style) a submitted scenario may load."
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="The only folder whose files (datasets, traces, configs) a submitted scenario may name; default: none.",
)
@click.option(
    "--per-target", type=click.IntRange(1, 64), default=1, show_default=True, help="Runs of one target at a time."
)
@click.option("--openapi", is_flag=True, help="Print the service's OpenAPI document (docs/openapi.json) and exit.")
def serve(
    openapi: bool,
    host: str,
    port: int,
    runs_dir: Path,
    redis_url: str | None,
    token_file: Path | None,
    images: tuple[str, ...],
    urls: tuple[str, ...],
    data_dir: Path | None,
    per_target: int,
) -> None:
    """Run finishline as an HTTP service: submit scenarios, watch and cancel runs, fetch their
    results, compare with baselines (docs/service.md)."""
    import redis
    from aiohttp import web

    from coordinator.service.access import AllowList, read_token
    from coordinator.service.app import Service
    from coordinator.service.queue import RunQueue
    from coordinator.service.server import make_app
    from coordinator.service.store import RunStore
    from coordinator.services.redis_server import redact
    from loadgen.errors import UserError

    if openapi:
        from coordinator.service.server import openapi_json

        click.echo(openapi_json(), nl=False)
        return
    token = read_token(token_file)
    runs_dir = runs_dir.resolve()
    state = runs_dir / ".service"
    try:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise UserError(f"--runs-dir: cannot write {runs_dir}: {exc.strerror}") from None
    os.environ[STATE_ENV] = str(state / "ledgers")  # the runs' ledgers too stay under the runs directory
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = None if redis_url else _private_redis(state)
    url = redis_url or (server.url if server else "")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise UserError(f"--redis-url: {redact(url)} does not answer ({exc})") from None
    service = Service(
        queue=RunQueue(RunStore(client), runs_dir, per_target),
        allow=AllowList(images=images, urls=urls, data_dir=None if data_dir is None else data_dir.resolve()),
        token=token,
        baselines=runs_dir / "baselines",
    )
    click.echo(f"finishline: serving on http://{host}:{port} (runs in {runs_dir}; state in {redact(url)})", err=True)
    try:
        web.run_app(make_app(service), host=host, port=port, print=None, handle_signals=True)
    finally:
        client.close()
        if server is not None:
            server.stop()


def _private_redis(state: Path) -> RedisServer:
    """The service's own redis-server, persisting under ``state``. One a killed service left
    running still holds the append-only file: it is stopped first (it writes what it holds as it
    stops), so two servers never share the file."""
    import psutil

    from coordinator.results.files import write_atomic
    from coordinator.run.ownership import OwnedProcess, stop_processes
    from coordinator.services.redis_server import RedisServer

    record = state / "redis-server.json"
    if record.exists():
        with contextlib.suppress(OSError, ValueError):
            stop_processes([OwnedProcess.model_validate_json(record.read_bytes())])
    server = RedisServer(data_dir=state / "redis").start()
    assert server.process is not None
    write_atomic(record, OwnedProcess.of(psutil.Process(server.process.pid)).model_dump_json())
    return server
