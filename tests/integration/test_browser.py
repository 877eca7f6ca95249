"""What a user sees, in real headless Chromium (Debian's, driven by Playwright).

- ``report.html`` of a real run (simulator target, two workloads, injected 500s) opens from
  file:// with every network request blocked: nothing is fetched, nothing logs an error, every
  figure has a size, the sections the report promises are there, and its numbers are
  summary.json's.
- ``finishline run --web``: Start with Locust's form as prefilled runs the scenario's phases
  (the statistics table fills with the LLM entries), the LLM tab and the ``/llm`` charts fill,
  an Edit runs its load as a phase of its own, and Stop ends the run with results written and
  no process left behind.

Screenshots go to ``tests.fixtures.browser.SCREENSHOT_DIR`` for a person to look at.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import psutil
import pytest

from coordinator.results.collector import read_records
from coordinator.results.summary import read_summary
from tests.factories import simulator_scenario, write_scenario
from tests.fixtures.browser import VIEWPORT, WatchedPage
from tests.fixtures.cli import start_finishline, the_run_dir, wait_gone

pytestmark = pytest.mark.browser
RUN_TIMEOUT_S = 120.0


def _scenario(tmp: Path, *phases: dict[str, Any]) -> Path:
    """Two workloads against the built-in simulator, which fails 15% of requests with HTTP 500;
    self-check limits wide enough for a machine that also runs a browser."""
    (tmp / "simulator.yaml").write_text('faults:\n  rates: {"500": 0.15}\n')
    scenario = simulator_scenario(
        tmp,
        list(phases),
        name="browser",
        target={"kind": "simulator", "preset": "gpu-8b", "config": "simulator.yaml"},
        slo={"ttft_ms": 300, "tpot_ms": 40, "percentile": 99},
        workers=1,
        drain_timeout=5,
        # Chromium shares the machine's cores with the worker, so its gevent loop can lag more
        # than the default 50 ms: these tests look at pages, and test_faults tests the self-check.
        selfcheck={"loop_lag_ms": 1000, "dispatch_delay_ms": 1000, "cpu_percent": 100},
    )
    return write_scenario(tmp, scenario)


def _cli(*args: str) -> subprocess.Popen[str]:
    return start_finishline(*args, stderr=subprocess.STDOUT)


def _tables(page: Any, selector: str) -> list[list[str]]:
    """Each row under ``selector`` as the text of its cells."""
    return page.evaluate(
        "sel => Array.from(document.querySelectorAll(sel)).map(tr => Array.from(tr.cells).map(c => c.innerText.trim()))",
        selector,
    )


# -- report.html -----------------------------------------------------------------------------

# Every label of every figure as the browser laid it out: any that reaches outside its figure
# (cut off) and any two that cover each other (unreadable).
_TEXT_LAYOUT_JS = """() => {
  const out = {outside: [], overlaps: []};
  document.querySelectorAll('figure svg').forEach((svg, i) => {
    const box = svg.getBoundingClientRect();
    const texts = Array.from(svg.querySelectorAll('text')).map(t => [t.textContent, t.getBoundingClientRect()])
      .filter(([s, r]) => s.trim() && r.width > 0);
    for (const [s, r] of texts) {
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
        out.outside.push([i, s]);
    }
    for (let a = 0; a < texts.length; a++) for (let b = a + 1; b < texts.length; b++) {
      const [s1, r1] = texts[a], [s2, r2] = texts[b];
      const w = Math.min(r1.right, r2.right) - Math.max(r1.left, r2.left);
      const h = Math.min(r1.bottom, r2.bottom) - Math.max(r1.top, r2.top);
      if (w > 1 && h > 1) out.overlaps.push([i, s1, s2]);
    }
  });
  return out;
}"""


def test_report_opens_offline_with_every_section_and_the_summary_numbers(
    tmp_path: Path, open_page: Callable[[str], WatchedPage]
) -> None:
    scenario = _scenario(
        tmp_path,
        {"name": "warmup", "kind": "warmup", "users": 2, "duration": "1s"},
        {"name": "steady", "users": 6, "duration": "3s"},
        {"name": "poisson", "rate": 10, "arrival": {"kind": "poisson"}, "duration": "2s"},
    )
    proc = _cli("run", str(scenario), "--no-live")
    out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, out
    run_dir = the_run_dir(tmp_path)
    summary = read_summary(run_dir / "summary.json")
    report = run_dir / "report.html"

    watched = open_page(report.as_uri())
    page = watched.page
    shot = watched.screenshot("report")
    assert watched.requests == [report.as_uri()], watched.requests  # self-contained: the file is all it loads
    assert watched.blocked == [] and watched.console_errors == [], (watched.blocked, watched.console_errors)

    # the page fits the window; wide tables scroll inside their own box
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"], shot

    # the sections the report promises, each visible, with its figure drawn at a real size
    figures = {
        "latency": ["TTFT CDF", "TPOT CDF", "ITL CDF", "E2E CDF"],
        "over-time": ["TTFT (ms)", "median ITL (ms)", "warmup", "steady", "poisson"],
        "per-phase": ["requests/s", "output tokens/s", "TTFT p99"],
        "errors": ["failed requests", "http_5xx"],
        "selfcheck": ["CPU %"],
    }
    body_width = page.evaluate("document.body.clientWidth")
    for section, labels in figures.items():
        svg = page.locator(f"section#{section} figure svg")
        assert svg.count() == 1, section
        box = svg.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 150, (section, box)
        assert box["width"] <= body_width, (section, box, body_width)
        text = svg.text_content() or ""  # svg.fonttype none: labels are real text
        for label in labels:
            assert label in text, (section, label)
    assert page.locator("figure svg").count() == len(figures)  # no other figure, none empty
    layout = page.evaluate(_TEXT_LAYOUT_JS)
    assert layout == {"outside": [], "overlaps": []}, (layout, shot)  # no label cut off or on top of another
    for section in ("results", "slo", "scenario", "environment"):
        assert page.locator(f"section#{section}").is_visible(), section
    assert "name: browser" in page.locator("section#scenario pre").inner_text()
    environment = json.loads(page.locator("section#environment pre").inner_text())
    assert environment["locust"] and environment["workers"] == 1

    # numbers on the page are summary.json's
    header = page.locator("body > p").first.inner_text()
    assert f"records: {summary.run.records:,}" in header
    rows = {(r[0], r[1]): r for r in _tables(page, "section#results table tr") if len(r) == 18 and r[1] == "all"}
    labels = {"warmup": "warmup (warm-up)", "steady": "steady", "poisson": "poisson"}
    for phase, label in labels.items():
        group = summary.phases[phase]
        row = rows[(label, "all")]
        assert row[2:5] == [f"{group.count:,}", f"{group.ok:,}", f"{group.errors:,}"], (phase, row)
        assert row[8] == f"{group.latency_ms.ttft.p50:,.1f}", (phase, row)
    whole = rows[("whole run, no warm-up", "all")]
    overall = summary.all
    assert whole[2] == f"{overall.count:,}" and overall.count > 0
    assert whole[8] == f"{overall.latency_ms.ttft.p50:,.1f}"  # TTFT p50
    assert whole[9] == f"{overall.latency_ms.ttft.p99:,.1f}"  # TTFT p99
    percentiles = {r[0]: r for r in _tables(page, "section#latency table tr")[1:]}
    assert percentiles["ttft"][1] == f"{overall.latency_ms.ttft.p50:,.2f}"
    assert percentiles["itl"][9] == f"{overall.latency_ms.itl.n:,}"

    errors = _tables(page, "section#errors table tr")[1:]
    expected = [  # per class: requests that failed with it, attempts that did (retried ones too)
        [p, cls, f"{g.errors_by_class.get(cls, 0):,}", f"{(g.attempts_by_class or {}).get(cls, 0):,}"]
        for p, g in ((p, summary.phases[p]) for p in summary.phases_order)
        for cls in sorted(set(g.errors_by_class) | set(g.attempts_by_class or {}) - {"ok"})
    ]
    assert errors == expected and expected, (errors, expected)
    slo = {r[0]: r for r in _tables(page, "section#slo table tr")[1:]}
    assert overall.slo is not None
    assert slo["ttft"][2] == f"{overall.slo.checks['ttft'].value_ms:,.1f}"


# -- finishline run --web --------------------------------------------------------------------


def _lines(stream: IO[str]) -> queue.Queue[str]:
    """The process's output, line by line, read on a thread (so waiting for a line can time out)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=read, name="cli-output", daemon=True).start()
    return lines


def _wait_for_line(lines: queue.Queue[str], pattern: str, seen: list[str], timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r} in {timeout:.0f} s: {''.join(seen)}")


def _stats(page: Any) -> dict[tuple[str, str], int]:
    """Locust's statistics table: (type, name) -> # requests."""
    out = {}
    for row in _tables(page, "table tbody tr"):
        if len(row) >= 3 and row[2].replace(",", "").isdigit():
            out[(row[0], row[1])] = int(row[2].replace(",", ""))
    return out


# the LLM tab's rows: every workload shows the phase and a TTFT p50 (a number, not "-")
_LLM_TAB_FILLED_JS = """phase => {
    const rows = Array.from(document.querySelectorAll('table tbody tr')).map(tr => Array.from(tr.cells).map(c => c.innerText.trim()));
    const filled = rows.filter(r => r.length >= 10 && r[1] === phase && /^[0-9][0-9,.]* \\/ /.test(r[6]));
    return new Set(filled.map(r => r[0])).size === 2;
}"""


def test_web_ui_start_runs_the_plan_the_llm_tab_fills_an_edit_is_its_own_phase_and_stop_writes_the_run(
    tmp_path: Path, open_page: Callable[[str], WatchedPage]
) -> None:
    """Start with the form as prefilled runs the plan (warm-up, then steady); the LLM tab and the
    charts page fill; Edit to other users runs them as a phase of their own; Stop ends the run
    (exit 0: a load of one's own ended by Stop is its normal end) with its results written and
    no process left."""
    scenario = _scenario(
        tmp_path,
        {"name": "warmup", "kind": "warmup", "users": 2, "duration": "3s"},
        {"name": "steady", "users": 3, "duration": "120s"},
    )
    proc = _cli("run", str(scenario), "--web", "--no-live")
    seen: list[str] = []
    children: list[psutil.Process] = []
    assert proc.stdout is not None
    lines = _lines(proc.stdout)
    try:
        url = _wait_for_line(lines, r"Locust web UI: (http://127\.0\.0\.1:\d+)", seen, 60).group(1)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4, children  # simulator, redis-server, Locust master and worker

        watched = open_page(url)
        page = watched.page
        page.wait_for_selector("input[name=userCount]", timeout=15_000)
        assert page.input_value("input[name=userCount]") == "3"  # the first measured phase's users
        assert page.input_value("input[name=host]").startswith("http://127.0.0.1:")  # the target
        page.click("button[type=submit]")  # Start, as prefilled: the plan
        # workers report every 3 s and the page polls every 2 s
        page.wait_for_function(
            """() => {
                const rows = Array.from(document.querySelectorAll('table tbody tr')).map(tr => tr.innerText);
                const counted = re => rows.some(r => re.test(r));
                return counted(/POST\\s+chat\\s+[1-9]/) && counted(/POST\\s+summarise\\s+[1-9]/)
                    && counted(/TTFT\\s+\\S+\\s+[1-9]/);
            }""",
            timeout=30_000,
        )
        stats = _stats(page)
        watched.screenshot("locust-web-ui")
        assert stats[("POST", "chat")] > 0 and stats[("POST", "summarise")] > 0, stats
        assert "RUNNING" in page.inner_text("body").upper()

        page.get_by_role("tab", name="LLM", exact=True).click()
        page.wait_for_function(_LLM_TAB_FILLED_JS, arg="steady", timeout=30_000)
        llm = {r[0]: r for r in _tables(page, "table tbody tr")}
        watched.screenshot("locust-web-ui-llm")
        for workload in ("chat", "summarise"):
            row = llm[workload]
            assert int(row[2].replace(",", "")) > 0 and float(row[5].replace(",", "")) > 0, row  # requests, tok/s
            assert all(re.fullmatch(r"[0-9,.]+ / [0-9,.]+ / [0-9,.]+", cell) for cell in row[6:10]), row
        assert any("http_5xx" in llm[w][3] + llm[w][4] for w in llm), llm  # the injected 500s: failed or retried

        charts = open_page(url + "/llm")
        charts.page.wait_for_function(
            "() => document.querySelectorAll('#chart-ttft polyline.series, #chart-tokens polyline.series').length >= 4",
            timeout=15_000,
        )
        charts.screenshot("locust-web-ui-llm-charts")
        assert charts.blocked == [] and charts.console_errors == [], (charts.blocked, charts.console_errors)

        page.get_by_role("button", name="Edit", exact=True).click()  # another load while the plan runs
        page.wait_for_selector("input[name=userCount]", timeout=5_000)  # the Edit form (Start's is gone)
        page.fill("input[name=userCount]", "2")
        page.click("form button[type=submit]")
        page.wait_for_function(_LLM_TAB_FILLED_JS, arg="web-2users", timeout=30_000)
        assert watched.blocked == [] and watched.console_errors == [], (watched.blocked, watched.console_errors)
        page.get_by_role("button", name="Stop", exact=True).click()
        proc.wait(timeout=90)  # the run drains, writes its results and exits by itself
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
            for child in children:
                if child.is_running():
                    child.kill()

    wait_gone(children)  # what the run stopped, reaped
    while not lines.empty():
        seen.append(lines.get_nowait())
    assert proc.returncode == 0, "".join(seen)

    run_dir = the_run_dir(tmp_path)
    records = list(read_records(run_dir / "records.jsonl.gz"))
    summary = read_summary(run_dir / "summary.json")
    assert len(records) == summary.run.records >= stats[("POST", "chat")] + stats[("POST", "summarise")]
    measured = [r for r in records if r.phase != "preflight"]  # the pre-flight request is kept, not counted
    assert {r.workload for r in measured} == {"chat", "summarise"}
    assert [w.name for w in summary.run.phases] == ["preflight", "warmup", "steady", "web-2users"]
    assert {r.phase for r in measured} == {"warmup", "steady", "web-2users"}
    assert len({r.user_id for r in measured if r.phase == "steady"}) == 3  # the plan's 3 closed users
    assert summary.all.count == sum(1 for r in measured if r.phase != "warmup")  # the warm-up is left out
    assert summary.phases["web-2users"].count > 0
    assert (run_dir / "report.html").stat().st_size > 0 and "web-2users" in (run_dir / "report.html").read_text()
