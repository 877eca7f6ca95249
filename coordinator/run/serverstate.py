"""The server's own queue, running requests and KV-cache use, read from its ``/metrics`` for
``--web``'s LLM tab while the run scrapes it (``metrics: {prometheus: true, scrape_target: true}``).

The names are the dashboards' (``dashboards.names.SERVER_GAUGES``: vLLM's, llama.cpp's, TGI's;
the simulator has vLLM's), the first one the server has, summed over its series as the
recording rules do. Read on a thread of its own so a slow server never holds up the run.
"""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from coordinator.periodic import Periodic
from coordinator.run.webprotocol import ServerFigures
from dashboards.names import SERVER_GAUGES

EVERY_S = 2.0
TIMEOUT_S = 1.0


def server_figures(exposition: str) -> ServerFigures:
    """The figures of one ``/metrics`` text; None for each the server has no series of."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == family.name:  # a gauge's own samples, not a histogram's parts
                values[sample.name] = values.get(sample.name, 0.0) + sample.value

    def first(kind: str) -> float | None:
        return next((values[name] for name in SERVER_GAUGES[kind] if name in values), None)

    return ServerFigures(waiting=first("waiting"), running=first("running"), kv_usage=first("kv_usage"))


def read_server_figures(base: str, timeout: float = TIMEOUT_S) -> ServerFigures | None:
    """One read of ``{base}/metrics`` (``base``: the server's root, ``metrics_base``); None when it
    does not answer or its text is not the exposition format."""
    try:
        with urllib.request.urlopen(base.rstrip("/") + "/metrics", timeout=timeout) as answer:
            return server_figures(answer.read().decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None


class ServerState:
    """Reads ``{base}/metrics`` every ``EVERY_S`` on a daemon thread; :attr:`latest` is the last answer's."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.latest: ServerFigures | None = None
        self._reading = Periodic("finishline-server-state", EVERY_S, self._read, at_start=True)

    def start(self) -> ServerState:
        self._reading.start()
        return self

    def _read(self) -> None:
        figures = read_server_figures(self.base)
        if figures is not None:  # else the last figures stay; a server that never answers shows none
            self.latest = figures

    def stop(self) -> None:
        self._reading.stop(timeout=TIMEOUT_S + 1)
