"""A private ``redis-server`` on a free loopback port, owned by whoever started it.

A run without a configured ``redis_url`` starts one of these and stops it at the end;
tests use the same class so that they exercise the real server. A run with workers on other
machines binds it to the scenario's ``workers.listen`` and gives it a random password: it is in
the URL the workers are sent, in a configuration file in the server's private temporary folder
(never on its command line), and never in a log or the run directory (:func:`redact`).
The service (``finishline serve``) gives it a ``data_dir``: then it keeps an append-only file
there, so a restarted server (and so a restarted service) finds what it held.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

from coordinator.services.ports import connect_address, free_port, url_host
from coordinator.services.process import OwnedService, start_process, stop_process
from coordinator.services.scratch import scratch_dir
from loadgen.errors import UserError


def new_password() -> str:
    return secrets.token_urlsafe(24)


def redact(url: str) -> str:
    """``url`` without its password, for messages, logs and files."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class RedisServer(OwnedService):
    """Start ``redis-server`` bound to ``bind`` (127.0.0.1 by default); stop it on exit.

    ``password``: clients must give it (``requirepass``); it is part of :attr:`url`.
    ``data_dir``: persist there (AOF, fsync every second) and keep the folder; without it,
    nothing is persisted and the server's private folder goes with it."""

    def __init__(
        self,
        port: int | None = None,
        binary: str = "redis-server",
        bind: str = "127.0.0.1",
        password: str | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.bind = bind
        self.data_dir = data_dir
        self.port = port or free_port(bind)
        self.binary = binary
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """How this machine reaches it (with the password, if any)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{url_host(connect_address(self.bind))}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        path = shutil.which(self.binary)
        if path is None:
            raise UserError(f"{self.binary} not found: install Debian's redis-server or set redis_url in the scenario")
        self._dir = scratch_dir("redis")
        config = Path(self._dir.name) / "redis.conf"  # the folder is the owner's alone (0700)
        config.write_text(f"requirepass {self.password}\n" if self.password else "")
        persist = ["--save", "", "--appendonly", "no", "--dir", self._dir.name]
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            persist = ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.data_dir)]
        client = redis.Redis.from_url(self.url)
        try:
            self.process = start_process(
                [
                    path,
                    str(config),
                    "--bind",
                    self.bind,
                    "--port",
                    str(self.port),
                    *persist,
                    "--protected-mode",
                    "yes",
                ],
                ready=lambda: _answers(client),
                what=f"redis-server on {url_host(self.bind)}:{self.port}",
                timeout=timeout,
                interval=0.02,
            )
        except BaseException:
            self.stop()
            raise
        finally:
            client.close()
        return self

    def stop(self) -> None:
        stop_process(self.process, timeout=5)
        self.process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.AuthenticationError):
        return False
