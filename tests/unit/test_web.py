"""``--web``: what a Start or an Edit in Locust's form runs, and the LLM tab's figures."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from coordinator.plan.steps import build_plan
from coordinator.results.summarize import summarize_group
from coordinator.run.serverstate import server_figures
from coordinator.run.web import CustomLoad, PlanLoad, Prefill, custom_step, next_load, prefill_of, web_template
from coordinator.run.weblive import LiveFigures
from coordinator.run.webprotocol import (
    LLM_COLUMNS,
    LiveView,
    Percentiles,
    ServerFigures,
    UiStart,
    WorkloadFigures,
    llm_rows,
    server_rows,
)
from coordinator.scenario.models import Scenario
from tests.factories import record, simulator_scenario

PREFILL = Prefill(users=3, spawn_rate=1000.0)


def test_start_as_prefilled_runs_the_plan_and_other_figures_run_that_load() -> None:
    assert next_load(None, UiStart(users=3, spawn_rate=1000), PREFILL) == PlanLoad()
    assert next_load(None, UiStart(users=5, spawn_rate=1000), PREFILL) == CustomLoad(users=5, spawn_rate=1000)
    assert next_load(None, UiStart(users=3, spawn_rate=2), PREFILL) == CustomLoad(users=3, spawn_rate=2)


def test_an_edit_changes_the_load_only_when_its_figures_do() -> None:
    assert next_load(PlanLoad(), UiStart(users=3, spawn_rate=1000), PREFILL) is None  # Edit without a change
    assert next_load(PlanLoad(), UiStart(users=8, spawn_rate=1000), PREFILL) == CustomLoad(users=8, spawn_rate=1000)
    current = CustomLoad(users=8, spawn_rate=1000)
    assert next_load(current, UiStart(users=8, spawn_rate=1000), PREFILL) is None
    # back to the prefilled figures while a load of one's own runs: that load, not the plan again
    assert next_load(current, UiStart(users=3, spawn_rate=1000), PREFILL) == CustomLoad(users=3, spawn_rate=1000)


def _plan(tmp_path: Path) -> Scenario:
    return Scenario.model_validate(
        simulator_scenario(
            tmp_path,
            [
                {"name": "warmup", "kind": "warmup", "users": 2, "duration": "5s"},
                {"name": "steady", "users": 3, "duration": "60s"},
                {"name": "poisson", "rate": 4, "arrival": {"kind": "poisson"}, "duration": "10s"},
            ],
        )
    )


def test_the_form_is_prefilled_with_the_first_measured_phase_and_a_load_of_ones_own_is_a_phase_of_its_own(
    tmp_path: Path,
) -> None:
    plan = build_plan(_plan(tmp_path))
    assert prefill_of(plan) == Prefill(users=3, spawn_rate=plan.locust_steps()[1].spawn_rate)
    template = web_template(plan)
    step = custom_step(CustomLoad(users=5, spawn_rate=2.5), template, 2, taken={"warmup", "steady"})
    assert step.name == step.command.name == "web-5users" and step.measured
    assert (step.users, step.spawn_rate, step.duration, step.requests) == (5, 2.5, None, None)
    assert step.command.mode == "closed" and step.command.users == 5 and step.command.worker_count == 2
    again = custom_step(CustomLoad(users=5, spawn_rate=1), None, 2, taken={"web-5users", "web-5users-2"})
    assert again.name == "web-5users-3"
    assert step.name not in plan.unmeasured()
    assert prefill_of(plan.model_copy(update={"steps": []})) == Prefill(users=1, spawn_rate=1.0)  # a sweep's plan


def test_the_live_figures_are_the_summarys_over_the_window_and_counts_over_the_run() -> None:
    now = time.monotonic()
    old = [record(t0=now - 100, workload="chat", ttft=0.9) for _ in range(3)]  # outside the window
    recent = [record(t0=now - 5 + i * 0.1, workload="chat", ttft=0.01 * (i + 1), tokens=5) for i in range(20)]
    failed = [record(t0=now - 3, workload="chat", error="http_5xx", retries=1, retry_error="timeout")]
    other = [record(t0=now - 2, workload="summarise", phase="warmup")]  # another phase: counted, not in the window
    preflight = [record(t0=now - 1, workload="chat", phase="preflight")]
    live = LiveFigures(window_s=30, skip=frozenset({"preflight"}))
    live.add(old + recent + failed + other + preflight)
    view = live.view("steady", phase_started=now - 50, run_started=now - 200)
    assert view.phase == "steady" and 199 < view.t < 210 and 29 < view.window_s < 31
    chat, summarise = view.workloads
    assert (chat.workload, chat.requests, chat.window_requests) == ("chat", 24, 21)
    assert chat.errors_by_class == {"http_5xx": 1} and chat.retries_by_class == {"timeout": 1}
    expected = summarize_group(recent + failed, view.window_s)
    assert chat.ttft == Percentiles(
        p50=expected.latency_ms.ttft.p50, p90=expected.latency_ms.ttft.p90, p99=expected.latency_ms.ttft.p99
    )
    assert chat.itl.p50 == expected.latency_ms.itl.p50 and chat.e2e.p99 == expected.latency_ms.e2e.p99
    assert chat.ttft.p99 is not None and chat.ttft.p99 < 300  # the old 900 ms ones are out of the window
    assert chat.output_tokens_per_s is not None and abs(chat.output_tokens_per_s - 100 / view.window_s) < 0.5
    assert (summarise.requests, summarise.window_requests, summarise.ttft.p50) == (1, 0, None)


def test_the_llm_tab_shows_each_workload_as_text_and_no_server_row_without_its_figures() -> None:
    view = LiveView(
        phase="steady",
        workloads=[
            WorkloadFigures(
                workload="chat",
                requests=1234,
                errors_by_class={"timeout": 2, "http_5xx": 3},
                output_tokens_per_s=456.4,
                ttft=Percentiles(p50=12.34, p90=20, p99=None),
            )
        ],
    )
    (row,) = llm_rows(view)
    assert set(row) == {key for key, _ in LLM_COLUMNS}
    assert row["requests"] == "1,234" and row["errors"] == "http_5xx 3, timeout 2" and row["retries"] == "0"
    assert row["ttft"] == "12.3 / 20.0 / -" and row["tpot"] == "- / - / -" and row["tokens"] == "456"
    assert all("_" not in key for key, _ in LLM_COLUMNS)  # Locust's UI camel-cases keys
    assert server_rows(view) == []


def _web_ui(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Locust's web UI of a local runner, not served: Flask's test client asks it."""
    from locust import User, constant, task
    from locust.env import Environment

    class Idle(User):
        wait_time = constant(1)

        @task
        def nothing(self) -> None:
            pass

    monkeypatch.setattr(sys, "argv", ["locust"])  # Locust's UI reads its options from the command line
    env = Environment(user_classes=[Idle], host="http://127.0.0.1:1/v1")
    env.create_local_runner()
    return env.create_web_ui("127.0.0.1", 0, delayed_start=True)


def test_the_master_answers_start_and_stop_itself_and_serves_the_llm_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    from coordinator.run.webui import WebHooks

    web_ui = _web_ui(monkeypatch)
    env = web_ui.environment
    said: list[tuple[str, dict[str, object]]] = []
    hooks = WebHooks(web_ui, lambda event, **fields: said.append((event, fields)))
    client = web_ui.app.test_client()
    answer = client.post("/swarm", data={"user_count": "3", "spawn_rate": "1000", "host": "http://x"}).get_json()
    assert answer["success"] is True and env.runner is not None and env.runner.user_count == 0
    assert said == [("ui_start", {"users": 3, "spawn_rate": 1000.0, "host": "http://x"})]
    assert client.post("/swarm", data={"user_count": "many", "spawn_rate": "1"}).get_json()["success"] is False
    assert client.post("/stop").get_json()["success"] is True and said[1:] == [("ui_stop", {})]

    view = LiveView(phase="steady", workloads=[WorkloadFigures(workload="chat", requests=7)])
    hooks.update(view)
    stats = client.get("/stats/requests").get_json()
    tables = {t["key"]: t["data"] for t in stats["extended_stats"]}
    assert tables == {"llm": llm_rows(view)} and "stats" in stats  # no server tab: its /metrics is not scraped
    assert {t["key"] for t in web_ui.template_args["extended_tabs"]} == set(tables)
    page = client.get("/llm")
    assert page.status_code == 200 and b"llm/data" in page.data
    assert b"http" not in page.data.replace(b"http://www.w3.org/2000/svg", b"")  # nothing fetched from elsewhere
    data = client.get("/llm/data").get_json()
    assert [LiveView.model_validate(v) for v in data["views"]] == [view]


def test_the_servers_figures_are_its_first_known_names_summed_over_its_series() -> None:
    vllm = """# HELP vllm:num_requests_waiting Requests waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="a"} 3.0
vllm:num_requests_waiting{model_name="b"} 1.0
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a"} 8.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{model_name="a"} 0.25
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="1.0"} 4.0
vllm:e2e_request_latency_seconds_count 4.0
vllm:e2e_request_latency_seconds_sum 2.0
"""
    assert server_figures(vllm) == ServerFigures(waiting=4.0, running=8.0, kv_usage=0.25)
    llamacpp = "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 2\n"
    assert server_figures(llamacpp) == ServerFigures(running=2.0)
    view = LiveView(server=ServerFigures(waiting=4.0, running=8.0, kv_usage=0.25))
    assert server_rows(view) == [{"waiting": "4", "running": "8", "kvcache": "25.0%"}]


def test_the_server_tab_is_there_only_when_the_run_scrapes_the_servers_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    from coordinator.run.webui import WebHooks

    web_ui = _web_ui(monkeypatch)
    hooks = WebHooks(web_ui, lambda event, **fields: None, server_tab=True)
    assert [t["key"] for t in web_ui.template_args["extended_tabs"]] == ["llm", "llm-server"]
    hooks.update(LiveView(server=ServerFigures(waiting=1.0, running=2.0, kv_usage=0.5)))
    stats = web_ui.app.test_client().get("/stats/requests").get_json()
    tables = {t["key"]: t["data"] for t in stats["extended_stats"]}
    assert tables == {"llm": [], "llm-server": [{"waiting": "1", "running": "2", "kvcache": "50.0%"}]}
