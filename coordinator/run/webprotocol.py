"""What the coordinator and the Locust master say to each other about Locust's web UI (``--web``).

The master answers the UI's Start (POST ``/swarm``) and Stop (POST ``/stop``) itself and tells the
coordinator (events ``ui_start``, ``ui_stop``), which decides what runs (``coordinator.run.web``):
the UI never starts users on its own. The coordinator sends the LLM figures it computes from the
records every few seconds (command ``live``, a :class:`LiveView`); the master keeps the latest,
shows it in the UI's LLM tab and keeps a short history of it for the charts page (``/llm``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

UI_START = "ui_start"
UI_STOP = "ui_stop"
UI_EVENTS = (UI_START, UI_STOP)
LIVE_COMMAND = "live"
LATENCIES = ("ttft", "tpot", "itl", "e2e")  # the metrics the LLM tab shows, loadgen.metrics' names


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class UiStart(_Message):
    """The UI's form as the user sent it (Start, or Edit while a test runs)."""

    users: int = Field(ge=0)
    spawn_rate: float = Field(gt=0)
    host: str = ""


class UiStop(_Message):
    """The UI's Stop button."""


class Percentiles(_Message):
    """One latency's p50, p90 and p99 in ms (``coordinator.results.summarize``); None without data."""

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None


class WorkloadFigures(_Message):
    """One workload's live figures: latencies and throughput over the window, counts over the run."""

    workload: str
    requests: int = Field(ge=0, description="requests of the run so far, failed ones included")
    errors_by_class: dict[str, int] = Field(default_factory=dict, description="failed requests of the run so far")
    retries_by_class: dict[str, int] = Field(default_factory=dict, description="retried attempts, by their class")
    window_requests: int = Field(default=0, ge=0, description="requests that ended in the window")
    output_tokens_per_s: float | None = None
    ttft: Percentiles = Percentiles()
    tpot: Percentiles = Percentiles()
    itl: Percentiles = Percentiles()
    e2e: Percentiles = Percentiles()


class ServerFigures(_Message):
    """The server's own state from its ``/metrics`` (as scraped for the run); None where it has no such series."""

    waiting: float | None = None
    running: float | None = None
    kv_usage: float | None = None  # 0..1


class LiveView(_Message):
    """One refresh of the LLM tab."""

    t: float = Field(default=0.0, description="seconds since the run started")
    phase: str = ""
    window_s: float = 0.0
    workloads: list[WorkloadFigures] = Field(default_factory=list)
    server: ServerFigures | None = None


def _ms(p: Percentiles) -> str:
    return " / ".join("-" if v is None else f"{v:,.1f}" for v in (p.p50, p.p90, p.p99))


def _classes(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in sorted(counts.items())) or "0"


# The LLM tab's columns (Locust's extended table: key -> title). Keys have no underscores: the UI
# camel-cases the keys of both the structure and the rows.
LLM_COLUMNS: tuple[tuple[str, str], ...] = (
    ("workload", "Workload"),
    ("phase", "Phase"),
    ("requests", "Requests"),
    ("errors", "Errors by class"),
    ("retries", "Retries by class"),
    ("tokens", "Output tokens/s"),
    *((name, f"{name.upper()} ms p50 / p90 / p99") for name in LATENCIES),
)
SERVER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("waiting", "Requests waiting"),
    ("running", "Requests running"),
    ("kvcache", "KV cache used"),
)


def llm_rows(view: LiveView) -> list[dict[str, str]]:
    """The LLM tab's rows: one per workload, its figures as text."""
    rows = []
    for w in view.workloads:
        rows.append(
            {
                "workload": w.workload,
                "phase": view.phase,
                "requests": f"{w.requests:,}",
                "errors": _classes(w.errors_by_class),
                "retries": _classes(w.retries_by_class),
                "tokens": "-" if w.output_tokens_per_s is None else f"{w.output_tokens_per_s:,.0f}",
                **{name: _ms(getattr(w, name)) for name in LATENCIES},
            }
        )
    return rows


def server_rows(view: LiveView) -> list[dict[str, str]]:
    """The server tab's one row (none when the server's /metrics is not scraped)."""
    s = view.server
    if s is None:
        return []

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"

    return [
        {
            "waiting": num(s.waiting),
            "running": num(s.running),
            "kvcache": "-" if s.kv_usage is None else f"{s.kv_usage:.1%}",
        }
    ]
