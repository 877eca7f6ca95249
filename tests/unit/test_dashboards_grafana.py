"""`finishline grafana push`: dashboards and run annotations through the Grafana HTTP API.

Grafana is in none of the registries this project can install from, so a loopback HTTP
server that answers the four endpoints grafana-client calls (as Grafana documents them) and
records every request stands in for it. What is checked is what grafana-client really sent.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from coordinator.cli import cli
from coordinator.results.status import RunStatus
from coordinator.results.summarize import summarize
from coordinator.results.summary import PhaseWindow, RunInfo
from dashboards import build

TOKEN = "glsa_test_token_value"


class Recorder(BaseHTTPRequestHandler):
    # what the server saw, for all its handlers (one per request); the fixture starts them empty
    calls: ClassVar[list[dict[str, Any]]] = []
    folders: ClassVar[set[str]] = set()

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.calls.append(
            {"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        return body

    def do_GET(self) -> None:
        self._record()
        uid = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/api/folders/") and uid in self.folders:
            self._reply(200, {"uid": uid, "title": uid})
        else:
            self._reply(404, {"message": "folder not found"})

    def do_POST(self) -> None:
        body = self._record()
        if self.path == "/api/folders":
            self.folders.add(body["uid"])
            self._reply(200, {"uid": body["uid"], "title": body["title"]})
        elif self.path == "/api/dashboards/db":
            self._reply(200, {"status": "success", "uid": body["dashboard"]["uid"], "version": 1})
        elif self.path == "/api/annotations":
            self._reply(200, {"id": len(self.calls), "message": "Annotation added"})
        else:
            self._reply(404, {"message": "not found"})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def grafana_api() -> Iterator[tuple[str, type[Recorder]]]:
    Recorder.calls = []
    Recorder.folders = set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Recorder
    server.shutdown()
    server.server_close()


def make_run_dir(tmp_path: Path) -> Path:
    run_dir = tmp_path / "demo-run"
    run_dir.mkdir()
    windows = (PhaseWindow(name="warmup", start=10.0, end=15.0), PhaseWindow(name="steady", start=15.5, end=45.0))
    summary = summarize([], windows, run=RunInfo(id="demo-run", started_wall=1_000.0, phases=windows))
    (run_dir / "summary.json").write_text(summary.model_dump_json())
    with gzip.open(run_dir / "records.jsonl.gz", "wb") as fh:
        fh.write(json.dumps({"wall_time": 1_009.0, "scheduled": 11.0}).encode() + b"\n")
    return run_dir


def test_push_uploads_every_dashboard_and_annotates_the_run(grafana_api, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url, rec = grafana_api
    monkeypatch.setenv("FINISHLINE_GRAFANA_TOKEN", TOKEN)
    run_dir = make_run_dir(tmp_path)
    result = CliRunner().invoke(cli, ["grafana", "push", "--url", url, "--run", str(run_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "pushed 3 dashboards" in result.output
    assert all(c["auth"] == f"Bearer {TOKEN}" for c in rec.calls)
    boards = [c["body"] for c in rec.calls if c["path"] == "/api/dashboards/db"]
    assert sorted(b["dashboard"]["uid"] for b in boards) == sorted(
        json.loads((build.ROOT / "json" / name).read_text())["uid"] for name in build.DASHBOARDS
    )
    assert all(b["overwrite"] is True and b["folderUid"] == "finishline" for b in boards)
    notes = [c["body"] for c in rec.calls if c["path"] == "/api/annotations"]
    kinds = [n["tags"][2] for n in notes]
    assert kinds == ["run_start", "phase", "phase", "run_end"]
    assert all(n["tags"][:2] == ["finishline", "demo-run"] for n in notes)
    # offset: wall 1009 at monotonic 11 -> phase steady 15.5..45 is 1013.5..1043 s
    steady = notes[2]
    assert (steady["time"], steady["timeEnd"]) == (1_013_500, 1_043_000)
    assert TOKEN not in result.output
    # a second push finds the folder and does not create it again
    CliRunner().invoke(cli, ["grafana", "push", "--url", url], catch_exceptions=False)
    assert sum(1 for c in rec.calls if c["path"] == "/api/folders") == 1


def test_push_without_configuration_says_what_to_set(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from loadgen.errors import UserError

    monkeypatch.delenv("FINISHLINE_GRAFANA_URL", raising=False)
    result = CliRunner().invoke(cli, ["grafana", "push"])
    assert isinstance(result.exception, UserError)
    assert "FINISHLINE_GRAFANA_URL" in str(result.exception)
    monkeypatch.delenv("FINISHLINE_GRAFANA_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["grafana", "push", "--url", "http://127.0.0.1:1"])
    assert "FINISHLINE_GRAFANA_TOKEN" in str(result.exception)


def test_a_live_run_is_annotated_from_its_events(grafana_api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from coordinator.bridge.grafana import attach_annotations
    from coordinator.run.events import PhaseEnded, PhaseStarted, RunEnded, RunEvents, RunStarted

    url, rec = grafana_api
    monkeypatch.setenv("FINISHLINE_GRAFANA_URL", url)
    monkeypatch.setenv("FINISHLINE_GRAFANA_TOKEN", TOKEN)
    ctx = SimpleNamespace(run_id="live-1", events=RunEvents())
    assert attach_annotations(ctx)
    step = SimpleNamespace(name="steady")
    ctx.events.run_start.fire(RunStarted(ctx))
    ctx.events.phase_start.fire(PhaseStarted(ctx, step, started=1.0))
    ctx.events.phase_end.fire(PhaseEnded(ctx, step, started=1.0, ended=3.0))
    ctx.events.run_end.fire(RunEnded(ctx, status=RunStatus.COMPLETE, summary=None))
    notes = [c["body"] for c in rec.calls if c["path"] == "/api/annotations"]
    assert [n["tags"] for n in notes] == [
        ["finishline", "live-1", "run_start"],
        ["finishline", "live-1", "phase"],
        ["finishline", "live-1", "run_end"],
    ]
    assert notes[1]["timeEnd"] >= notes[1]["time"]
    assert "complete" in notes[2]["text"]
