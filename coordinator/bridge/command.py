"""``finishline bridge``: one bridge process for one run, serving ``/metrics`` on loopback."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import click
import redis
from prometheus_client import start_http_server

from coordinator.bridge.consumer import Bridge, BridgeOptions
from coordinator.services.redis_server import redact
from loadgen.errors import UserError
from loadgen.metrics import SloRule

READY = "bridge: serving"


@click.command(
    "bridge",
    epilog="\b\nExample (a run starts its own bridge; this one watches a run's stream by hand):\n"
    "  finishline bridge --run-id quickstart-20261201-101500-ab12cd --redis-url redis://127.0.0.1:6379/0 --port 9108",
)
@click.option("--run-id", required=True, help="Run whose stream finishline:{run_id}:records is read.")
@click.option("--redis-url", required=True, help="Redis holding the run's streams.")
@click.option(
    "--consumer",
    default="bridge-1",
    show_default=True,
    help="Stable consumer name; a restart with the same name resumes its counts.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address of /metrics (loopback only).")
@click.option("--port", default=0, type=int, show_default=True, help="Port of /metrics; 0 picks a free one.")
@click.option("--scenario", default=None, help="scenario label (default: the run's state hash).")
@click.option("--target", default=None, help="target label of the gauges (default: the run's state hash).")
@click.option("--slo-ttft-ms", type=float, default=None, help="TTFT threshold of goodput.")
@click.option("--slo-tpot-ms", type=float, default=None, help="TPOT threshold of goodput.")
@click.option("--slo-e2e-ms", type=float, default=None, help="E2E threshold of goodput.")
@click.option(
    "--slo-objective", type=float, default=0.99, show_default=True, help="Share of requests that should be good."
)
@click.option(
    "--reclaim-idle-s",
    type=float,
    default=30.0,
    show_default=True,
    help="Take over entries a dead consumer left idle this long.",
)
@click.option(
    "--trim-require",
    default="collector",
    show_default=True,
    help="Comma-separated groups that must exist before the stream is trimmed ('' for none).",
)
def bridge(
    run_id: str,
    redis_url: str,
    consumer: str,
    host: str,
    port: int,
    scenario: str | None,
    target: str | None,
    slo_ttft_ms: float | None,
    slo_tpot_ms: float | None,
    slo_e2e_ms: float | None,
    slo_objective: float,
    reclaim_idle_s: float,
    trim_require: str,
) -> None:
    """Expose a run's records live as Prometheus metrics (consumer group 'bridge')."""
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise click.BadParameter("only loopback addresses are served; use 127.0.0.1", param_hint="--host")
    rule = SloRule.from_ms(slo_ttft_ms, slo_tpot_ms, slo_e2e_ms)
    options = BridgeOptions(
        run_id=run_id,
        redis_url=redis_url,
        consumer=consumer,
        scenario=scenario,
        target=target,
        slo_ttft_s=rule.ttft,
        slo_tpot_s=rule.tpot,
        slo_e2e_s=rule.e2e,
        slo_objective=slo_objective,
        reclaim_idle_s=reclaim_idle_s,
        trim_require=tuple(g for g in trim_require.split(",") if g),
    )
    try:
        worker = Bridge(options)
    except redis.ConnectionError as exc:
        raise UserError(
            f"--redis-url: cannot connect to {redact(redis_url)} ({exc}); start redis-server or fix the URL"
        ) from None
    server, _thread = start_http_server(port, addr=host, registry=worker.registry)
    bound = server.server_address[1]

    def _stop(signum: int, frame: FrameType | None) -> None:
        worker.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"{READY} http://{host}:{bound}/metrics run={run_id} consumer={consumer}")
    sys.stdout.flush()
    try:
        worker.run()
    finally:
        server.shutdown()
        worker.close()
