"""A private ``prometheus`` on a free loopback port, with a generated config, owned by its starter.

Like :mod:`coordinator.services.redis_server`: a run with Prometheus export on starts one
(scraping its bridge and target) and stops it at the end; tests use the same class.
The TSDB lives in a temporary directory unless ``data_dir`` is given (to keep a run's data).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter

from coordinator.services.ports import free_port
from coordinator.services.process import OwnedService, http_ok, start_process, stop_process
from coordinator.services.scratch import scratch_dir
from loadgen.errors import ServiceError, UserError

# The lists the HTTP API answers with (vector elements, targets, rule groups): checked to be a
# list of JSON objects, the objects read by the caller.
_OBJECTS: TypeAdapter[list[dict[str, Any]]] = TypeAdapter(list[dict[str, Any]])


class PrometheusServer(OwnedService):
    """``prometheus`` on 127.0.0.1 with ``config`` (a dict like prometheus.yml); stops on exit."""

    def __init__(
        self,
        config: dict[str, Any],
        port: int | None = None,
        binary: str = "prometheus",
        data_dir: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.config = config
        self.port = port or free_port()
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        path = shutil.which(self.binary)
        if path is None:
            raise UserError(f"{self.binary} not found: install Debian's prometheus or turn Prometheus export off")
        self._dir = scratch_dir("prometheus")
        work = Path(self._dir.name)
        config_path = work / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        data = self.data_dir or work / "data"
        try:
            self.process = start_process(
                [
                    path,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                    "--storage.tsdb.retention.time=15d",
                ],
                ready=lambda: http_ok(f"{self.url}/-/ready"),
                what=f"prometheus on 127.0.0.1:{self.port}",
                timeout=timeout,
                interval=0.1,
                log_path=self.log_path,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise ServiceError(f"prometheus {path}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query: the ``result`` list (vector elements or a scalar wrapped in a list)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params)
        result = data["result"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": result}]
        return _OBJECTS.validate_python(result)

    def value(self, expr: str) -> float | None:
        """The single value of ``expr`` (``None`` if empty)."""
        result = self.query(expr)
        if not result:
            return None
        return float(result[0]["value"][1])

    def targets(self) -> list[dict[str, Any]]:
        return _OBJECTS.validate_python(self._get("/api/v1/targets", {"state": "active"})["activeTargets"])

    def rules(self) -> list[dict[str, Any]]:
        return _OBJECTS.validate_python(self._get("/api/v1/rules", {})["groups"])

    def wait_targets_up(self, timeout: float = 30.0) -> None:
        """Until every configured target has been scraped successfully once."""
        deadline = time.monotonic() + timeout
        while True:
            targets = self.targets()
            if targets and all(t["health"] == "up" for t in targets):
                return
            if time.monotonic() > deadline:
                states = {t["scrapeUrl"]: t["health"] + " " + t.get("lastError", "") for t in targets}
                raise ServiceError(f"prometheus targets not up: {states}")
            time.sleep(0.2)

    def wait_scrape_after(self, moment_wall: float, timeout: float = 30.0) -> None:
        """Until every target was scraped after ``moment_wall`` (``time.time()``): data is in."""
        deadline = time.monotonic() + timeout
        while True:
            targets = self.targets()
            scraped = [_rfc3339(t.get("lastScrape", "")) for t in targets]
            if targets and all(s is not None and s > moment_wall for s in scraped):
                return
            if time.monotonic() > deadline:
                raise ServiceError("prometheus did not scrape every target in time")
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self.process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def _rfc3339(text: str) -> float | None:
    """Prometheus' ``lastScrape`` (RFC 3339, nanoseconds) as a Unix time; None before the first scrape."""
    if not text or text.startswith("0001-"):
        return None
    return datetime.fromisoformat(text).timestamp()
