"""``finishline worker``: join a run from another machine as one of its Locust workers.

The command becomes ``python -m locust -f <finishline's locustfile> --worker`` against the
master (``os.execvpe``: nothing of finishline's CLI stays between Locust and its signals). The
worker gets everything else from the master over Locust's messages (``loadgen.joining``).
"""

from __future__ import annotations

import os
import re
import sys

import click

from coordinator.run.cluster import locustfile_path
from coordinator.run.launchers import MasterAddress, worker_command
from loadgen.config import REDIS_URL_ENV
from loadgen.errors import UserError

_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:\[\]]+)):(?P<port>[0-9]{1,5})$")

EPILOG = """
\b
The run's scenario says how many remote workers it waits for (workers: {remote: N}); the
run prints the command to give. The worker reads the target's API key from the environment
variable the scenario names, here, and prompt files from the same paths as on the master.

\b
Example:
  finishline worker --master 10.0.0.1:5557
  finishline worker --master 10.0.0.1:5557 --redis-url redis://:PASSWORD@10.0.0.1:6379/0
"""


def parse_master(value: str) -> MasterAddress:
    """``HOST:PORT`` (``[IPv6]:PORT``) as a master address; one line naming the mistake otherwise."""
    match = _HOST_PORT.match(value.strip())
    port = int(match.group("port")) if match else 0
    if match is None or not 1 <= port <= 65535:
        raise UserError(f"--master: expected HOST:PORT, e.g. 10.0.0.1:5557, not {value!r}")
    return MasterAddress(match.group("v6") or match.group("host"), port)


@click.command(epilog=EPILOG)
@click.option("--master", "master", required=True, metavar="HOST:PORT", help="The run's Locust master.")
@click.option(
    "--redis-url",
    help="How this machine reaches the run's Redis; default: the URL the master sends, its host "
    "replaced by the master's when it names loopback or 0.0.0.0.",
)
def worker(master: str, redis_url: str | None) -> None:
    """Join a run as one of its Locust workers, from any machine that reaches its master."""
    address = parse_master(master)
    if redis_url is not None and not re.match(r"^(redis|rediss|unix)://", redis_url):
        raise UserError(f"--redis-url: expected redis://HOST:PORT/DB, not {redis_url!r}")
    env = dict(os.environ)
    if redis_url is not None:
        env[REDIS_URL_ENV] = redis_url
    cmd = worker_command(locustfile_path(), address)
    # Locust's worker waits for its master without a word: say what it waits for
    print(
        f"finishline worker: joining the run whose master is at {master} (waiting for it) ...",
        file=sys.stderr,
        flush=True,
    )
    os.execvpe(cmd[0], cmd, env)
