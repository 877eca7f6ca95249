"""``environment.json``: what the run ran on, so a result can be judged (and compared) later."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import sys
import time
from importlib import metadata

from coordinator.scenario.models import Scenario


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment_info(scenario: Scenario, run_id: str) -> str:
    """JSON text; holds no secret (the target's key is only named, never read here)."""
    info: dict[str, object] = {
        "run_id": run_id,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "finishline": _version("finishline"),
        "locust": _version("locust"),
        "gevent": _version("gevent"),
        "workers": scenario.worker_count,
        "worker_sources": {
            k: v for k, v in scenario.worker_sources.model_dump().items() if k in ("local", "remote", "containers")
        },
        "target_kind": scenario.target.kind,
        "tags": scenario.tags,
    }
    with contextlib.suppress(OSError):
        info["load_average"] = list(os.getloadavg())
    return json.dumps(info, indent=2)
