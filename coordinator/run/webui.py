"""Locust's web UI in the master process (``--web``), extended the way Locust documents it:
request hooks and routes on ``web_ui.app`` and ``web_ui.template_args``.

- POST ``/swarm`` (Start, Edit) and POST ``/stop`` are answered here with Locust's own success
  answer; no user starts or stops here: they become ``ui_start`` / ``ui_stop`` events for the
  coordinator, which runs the load (``coordinator.run.web``).
- An "LLM" tab, and an "LLM server" tab when the run scrapes the server's /metrics (Locust's
  extended tabs and tables); their rows travel in ``/stats/requests`` as ``extended_stats``,
  from the coordinator's latest ``live`` figures.
- ``/llm``: a page of live charts of those figures (Locust's bundle has no way to add charts),
  drawn by its own script from ``/llm/data``; linked from the "Download Data" tab.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

from flask import Response, jsonify, request
from locust.web import WebUI
from pydantic import ValidationError

from coordinator.run.webpage import LLM_PAGE
from coordinator.run.webprotocol import (
    LLM_COLUMNS,
    SERVER_COLUMNS,
    UI_START,
    UI_STOP,
    LiveView,
    UiStart,
    llm_rows,
    server_rows,
)

HISTORY = 600  # chart points kept (20 minutes at one every 2 s)
LLM_TAB = "llm"
SERVER_TAB = "llm-server"
CHARTS_PATH = "/llm"

Emit = Callable[..., None]


def _structure(columns: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"key": key, "title": title} for key, title in columns]


class WebHooks:
    """The master's additions to Locust's web UI; :meth:`update` takes the coordinator's figures."""

    def __init__(self, web_ui: WebUI, emit: Emit, server_tab: bool = False) -> None:
        self.web_ui = web_ui
        self.emit = emit
        self.view = LiveView()
        self.history: deque[LiveView] = deque(maxlen=HISTORY)
        app = web_ui.app
        assert app is not None, "Locust's web UI has its Flask app once created"
        app.before_request(self._before)
        app.after_request(self._after)
        app.add_url_rule(CHARTS_PATH, "finishline_llm", self._page)
        app.add_url_rule(f"{CHARTS_PATH}/data", "finishline_llm_data", self._data)
        tabs = [(LLM_TAB, "LLM", LLM_COLUMNS)] + ([(SERVER_TAB, "LLM server", SERVER_COLUMNS)] if server_tab else [])
        web_ui.template_args.update(
            extended_tabs=[{"key": key, "title": title} for key, title, _ in tabs],
            extended_tables=[{"key": key, "structure": _structure(columns)} for key, _, columns in tabs],
            extended_csv_files=[{"href": f".{CHARTS_PATH}", "title": "LLM charts (live)"}],
        )
        self.server_tab = server_tab

    def update(self, view: LiveView) -> None:
        self.view = view
        if view.workloads:
            self.history.append(view)

    def _before(self) -> Response | None:
        if request.method != "POST":
            return None
        if request.path == "/swarm":
            env = self.web_ui.environment
            try:
                start = UiStart(
                    users=int(request.form.get("user_count", "")),
                    spawn_rate=float(request.form.get("spawn_rate", "")),
                    host=request.form.get("host", ""),
                )
            except (ValueError, ValidationError):
                return jsonify({"success": False, "message": "users and spawn rate must be numbers", "host": env.host})
            self.emit(UI_START, **start.model_dump())
            return jsonify({"success": True, "message": "Swarming started", "host": env.host})
        if request.path == "/stop":
            self.emit(UI_STOP)
            return jsonify({"success": True, "message": "Test stopped"})
        return None

    def _after(self, response: Response) -> Response:
        if request.path != "/stats/requests" or response.mimetype != "application/json":
            return response
        report: dict[str, Any] = json.loads(response.get_data())
        report["extended_stats"] = [{"key": LLM_TAB, "data": llm_rows(self.view)}]
        if self.server_tab:
            report["extended_stats"].append({"key": SERVER_TAB, "data": server_rows(self.view)})
        response.set_data(json.dumps(report))
        return response

    def _page(self) -> Response:
        return Response(LLM_PAGE, mimetype="text/html")

    def _data(self) -> Response:
        body = {"views": [v.model_dump(mode="json") for v in self.history]}
        return Response(json.dumps(body), mimetype="application/json")
