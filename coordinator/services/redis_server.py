"""A private ``redis-server`` on a free loopback port, owned by whoever started it.

A run without a configured ``redis_url`` starts one of these and stops it at the end;
tests use the same class so that they exercise the real server.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile

import redis

from coordinator.services.ports import free_port
from coordinator.services.process import OwnedService, start_process, stop_process
from coordinator.services.scratch import scratch_dir
from loadgen.errors import UserError


class RedisServer(OwnedService):
    """Start ``redis-server`` bound to 127.0.0.1 without persistence; stop it on exit."""

    def __init__(self, port: int | None = None, binary: str = "redis-server") -> None:
        self.port = port or free_port()
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        path = shutil.which(self.binary)
        if path is None:
            raise UserError(f"{self.binary} not found: install Debian's redis-server or set redis_url in the scenario")
        self._dir = scratch_dir("redis")
        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            self.process = start_process(
                [
                    path,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    self._dir.name,
                    "--protected-mode",
                    "yes",
                ],
                ready=lambda: _answers(client),
                what=f"redis-server on 127.0.0.1:{self.port}",
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
    except redis.ConnectionError:
        return False
