"""What a user sees, in real headless Chromium (Debian's, driven by Playwright).

- ``report.html`` of a real run (simulator target, two workloads, injected 500s) opens from
  file:// with every network request blocked: nothing is fetched, nothing logs an error; the
  verdict comes first and says what the console's last line and the exit code say; every
  section the report promises is there, figures then tables; no table cell is cut off at a
  1,280 px window nor at the width of A4, and the page prints to an A4 PDF; its numbers are
  summary.json's.
- the reports of a failed run (a dead target, exit 6), an invalid one (the self-check, exit 4)
  and one compared with a baseline (the real run, on a slower simulator: exit 1) each lead with
  the verdict of their exit code.
- ``finishline run --web``: Start with Locust's form as prefilled runs the scenario's phases
  (the statistics table fills with the LLM entries), the LLM tab, the LLM server tab (the
  server's queue, running requests and KV cache from its /metrics) and the ``/llm`` charts fill,
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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil
import pytest

from coordinator.results.collector import read_records
from coordinator.results.summary import read_summary
from coordinator.services.ports import free_port
from tests.factories import REPORT_SECTIONS, simulator_scenario, write_scenario
from tests.fixtures.browser import SCREENSHOT_DIR, VIEWPORT, WatchedPage
from tests.fixtures.cli import finishline, start_finishline, the_run_dir, wait_gone

pytestmark = pytest.mark.browser
RUN_TIMEOUT_S = 120.0


def _scenario(tmp: Path, *phases: dict[str, Any], simulator: str = "", **fields: Any) -> Path:
    """Two workloads against the built-in simulator, which fails 15% of requests with HTTP 500
    (``simulator``: more of its configuration); self-check limits wide enough for a machine that
    also runs a browser; ``fields`` replace the scenario's."""
    (tmp / "simulator.yaml").write_text('faults:\n  rates: {"500": 0.15}\n' + simulator)
    defaults: dict[str, Any] = {
        "name": "browser",
        "target": {"kind": "simulator", "preset": "gpu-8b", "config": "simulator.yaml"},
        "slo": {"ttft_ms": 300, "tpot_ms": 40, "percentile": 99},
        "workers": 1,
        "drain_timeout": 5,
        # Chromium shares the machine's cores with the worker, so its gevent loop can lag more
        # than the default 50 ms: these tests look at pages, and test_faults tests the self-check.
        "selfcheck": {"loop_lag_ms": 1000, "dispatch_delay_ms": 1000, "cpu_percent": 100},
    }
    scenario = simulator_scenario(tmp, list(phases), **(defaults | fields))
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


@dataclass(frozen=True)
class Ran:
    """A finished ``finishline run``: its run directory, exit code and console output."""

    run_dir: Path
    code: int
    out: str

    @property
    def last_line(self) -> str:
        return self.out.strip().splitlines()[-1]


def _run(tmp: Path, scenario: Path, *args: str) -> Ran:
    proc = _cli("run", str(scenario), "--no-live", *args)
    out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    return Ran(the_run_dir(tmp), proc.returncode, out)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """A run of three phases (a warm-up, closed users, Poisson arrivals): the report the first test
    reads, and the baseline of the comparison's."""
    tmp = tmp_path_factory.mktemp("real")
    scenario = _scenario(
        tmp,
        {"name": "warmup", "kind": "warmup", "users": 2, "duration": "1s"},
        {"name": "steady", "users": 6, "duration": "3s"},
        {"name": "poisson", "rate": 10, "arrival": {"kind": "poisson"}, "duration": "2s"},
    )
    return _run(tmp, scenario)


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

# Every table cell whose right edge is past the window, past its section (the page's column) or
# past a box that clips it (a box that scrolls or hides what overflows: what is past its edge is
# not seen), every such box holding more than it shows, and every cell whose own text is wider
# than the cell: nothing cut off.
_CLIPPED_JS = """() => {
  const width = document.documentElement.clientWidth, out = [];
  const name = el => (el.closest('section') || {id: 'body'}).id + ': ' + el.innerText.trim().slice(0, 40);
  const clips = el => ['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(el).overflowX);
  for (const cell of document.querySelectorAll('td, th')) {
    const right = cell.getBoundingClientRect().right;
    if (right > width + 1) out.push(['past the window', name(cell), right, width]);
    const section = cell.closest('section') || document.body;
    if (right > section.getBoundingClientRect().right + 1) out.push(['past its section', name(cell), right]);
    for (let box = cell.parentElement; box && box !== document.body; box = box.parentElement) {
      if (clips(box) && right > box.getBoundingClientRect().right + 1) out.push(['past its box', name(cell), right]);
    }
    if (cell.scrollWidth > cell.clientWidth + 1) out.push(['text wider than its cell', name(cell)]);
  }
  for (const box of document.querySelectorAll('body *')) {
    if (clips(box) && box.scrollWidth > box.clientWidth + 1 && box.querySelector('table'))
      out.push(['scrolls', (box.closest('section') || {id: 'body'}).id, box.scrollWidth, box.clientWidth]);
  }
  if (document.documentElement.scrollWidth > width) out.push(['page', document.documentElement.scrollWidth, width]);
  return out;
}"""

A4_PRINTED_PX = 703  # the width of an A4 page inside the report's 12 mm margins, in CSS pixels (186 mm)
# every section of a real run's report, in order: with its workers.json, the Workers table too
SECTIONS = [
    *REPORT_SECTIONS[: REPORT_SECTIONS.index("selfcheck") + 1],
    "workers",
    *REPORT_SECTIONS[REPORT_SECTIONS.index("scenario") :],
]


def _verdict(watched: WatchedPage, ran: Ran) -> str:
    """The page's verdict, checked to be its first section and to say what the console's last line
    and the exit code say; returns the verdict's text."""
    page = watched.page
    first = page.evaluate("document.querySelector('body > section').id")
    assert first == "verdict", first
    tops = page.evaluate("Array.from(document.querySelectorAll('section')).map(s => s.getBoundingClientRect().top)")
    assert tops[0] == min(tops) and tops[0] < VIEWPORT["height"], tops  # on the first screen
    headline = page.locator("section#verdict .banner.verdict b").inner_text()
    code = page.locator("section#verdict .banner.verdict .note").inner_text()
    assert code == f"(exit code {ran.code})", (code, ran.code)
    assert ran.last_line == f"finishline: {headline} (exit {ran.code})", (ran.last_line, headline)
    assert watched.blocked == [] and watched.console_errors == [], (watched.blocked, watched.console_errors)
    return page.locator("section#verdict").inner_text()


def _checks(page: Any) -> dict[str, list[str]]:
    """The verdict's table: check -> [verdict, what was measured]."""
    return {r[0]: r[1:] for r in _tables(page, "section#verdict table.checks tr")[1:]}


def test_report_opens_offline_verdict_first_nothing_clipped_and_prints_on_a4(
    real_run: Ran, open_page: Callable[[str], WatchedPage]
) -> None:
    assert real_run.code == 0, real_run.out
    run_dir = real_run.run_dir
    summary = read_summary(run_dir / "summary.json")
    report = run_dir / "report.html"

    watched = open_page(report.as_uri())
    page = watched.page
    shot = watched.screenshot("report")
    assert watched.requests == [report.as_uri()], watched.requests  # self-contained: the file is all it loads
    verdict = _verdict(watched, real_run)
    assert page.evaluate("Array.from(document.querySelectorAll('body > section')).map(s => s.id)") == SECTIONS

    # the verdict: the headline figures, each SLO against its limit, valid, complete
    overall = summary.all
    assert overall.slo is not None and overall.goodput.share is not None
    for figure_ in (
        f"requests\n{overall.count:,}",
        f"TTFT p50\n{overall.latency_ms.ttft.p50:,.1f} ms",
        f"TTFT p99\n{overall.latency_ms.ttft.p99:,.1f} ms",
        f"TPOT p50\n{overall.latency_ms.tpot.p50:,.1f} ms",
        f"output tok/s\n{overall.output_tokens_per_s:,.1f}",
        f"goodput\n{100 * overall.goodput.share:.1f}%",
        f"records: {summary.run.records:,}",
    ):
        assert figure_ in verdict, (figure_, verdict)
    checks = _checks(page)
    ttft = overall.slo.checks["ttft"]
    assert checks["SLO TTFT p99"][0] == {True: "met", False: "MISSED", None: "no data"}[ttft.met]
    assert checks["SLO TTFT p99"][1].startswith(f"{ttft.value_ms:,.1f} ms"), checks
    assert "limit 300.0 ms" in checks["SLO TTFT p99"][1] and "SLO TPOT p99" in checks
    assert checks["Self-check"][0] == "Valid" and checks["Completeness"][0] == "Complete", checks

    # nothing in a table is cut off at 1,280 px, and the page is no wider than the window
    assert page.evaluate(_CLIPPED_JS) == [], shot

    # the figures, each visible with its labels, at a real size
    figures = {
        "latency": ["TTFT CDF", "TPOT CDF", "ITL CDF", "E2E CDF"],
        "over-time": ["TTFT (ms)", "median ITL (ms)", "warmup", "steady", "poisson"],
        "per-phase": ["requests/s", "output tokens/s", "TTFT p99"],
        "failures": ["failed requests", "http_5xx"],
        "client-health": ["CPU %"],
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
    assert "name: browser" in page.locator("section#scenario pre").inner_text()
    environment = json.loads(page.locator("section#environment pre").inner_text())
    assert environment["locust"] and environment["workers"] == 1

    # numbers on the page are summary.json's
    counts = {(r[0], r[1]): r for r in _tables(page, "section#results table.results:not(.latency) tr")[1:]}
    latency = {(r[0], r[1]): r for r in _tables(page, "section#results table.latency tr")[2:]}
    labels = {"warmup": "warmup (warm-up)", "steady": "steady", "poisson": "poisson"}
    for phase, label in labels.items():
        group = summary.phases[phase]
        row = counts[(label, "all")]
        assert row[2:5] == [f"{group.count:,}", f"{group.ok:,}", f"{group.errors:,}"], (phase, row)
        assert latency[(label, "all")][2] == f"{group.latency_ms.ttft.p50:,.1f}", (phase, latency)
    whole = ("whole run, no warm-up", "all")
    assert counts[whole][2] == f"{overall.count:,}" and overall.count > 0
    ttft_p50, ttft_p99 = latency[whole][2:4]
    assert (ttft_p50, ttft_p99) == (f"{overall.latency_ms.ttft.p50:,.1f}", f"{overall.latency_ms.ttft.p99:,.1f}")
    percentiles = {r[0]: r for r in _tables(page, "section#percentiles table tr")[1:]}
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
    assert slo["ttft"][2] == f"{ttft.value_ms:,.1f}"
    # the self-check: one row per worker with its samples, not JSON
    assert summary.selfcheck is not None
    health = {r[0]: r for r in _tables(page, "section#selfcheck table.selfcheck tr")[1:]}
    for worker, h in summary.selfcheck.workers.items():
        assert health[worker][1:3] == [f"{h.samples:,}", f"{h.cpu_p90:,.1f}"], (worker, health)
    assert _tables(page, "section#selfcheck table.dispatch tr")[1][0] == "dispatch delay"

    # printed on A4: pages of A4's size, figures and table rows kept whole, nothing wider than the paper
    pdf = page.pdf(format="A4", print_background=True)
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))
    assert pdf.startswith(b"%PDF") and pages >= 3, pages
    (SCREENSHOT_DIR / "report.pdf").write_bytes(pdf)
    boxes = {(float(w), float(h)) for w, h in re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)}
    assert boxes and all(abs(w - 595.3) < 2 and abs(h - 841.9) < 2 for w, h in boxes), boxes  # A4: 210 x 297 mm
    page.emulate_media(media="print")
    page.set_viewport_size({"width": A4_PRINTED_PX, "height": 1000})
    assert page.evaluate(_CLIPPED_JS) == [], "printed"
    kept = page.evaluate(
        "Array.from(document.querySelectorAll('figure, tr, section#verdict')).map(e => getComputedStyle(e).breakInside)"
    )
    assert set(kept) == {"avoid"}, set(kept)


def test_a_failed_an_invalid_and_a_compared_run_each_show_the_verdict_of_their_exit_code(
    real_run: Ran, tmp_path: Path, open_page: Callable[[str], WatchedPage]
) -> None:
    steady = {"name": "steady", "users": 6, "duration": "3s"}
    # a dead target: a closed port, no pre-flight, so the run starts and ends early (exit 6)
    dead = tmp_path / "dead"
    dead.mkdir()
    port = free_port()
    target = {"kind": "url", "base_url": f"http://127.0.0.1:{port}/v1", "model": "m", "preflight": False}
    failed = _run(dead, _scenario(dead, {**steady, "duration": "60s"}, target=target, checks={"abort_when_down_s": 3}))
    assert failed.code == 6, failed.out
    watched = open_page((failed.run_dir / "report.html").as_uri())
    watched.screenshot("report-failed")
    verdict = _verdict(watched, failed)
    assert "REQUESTS FAILED" in verdict and "errors\n100.0%" in verdict, verdict

    # an invalid run: self-check limits no client meets (exit 4)
    tight = tmp_path / "invalid"
    tight.mkdir()
    invalid = _run(tight, _scenario(tight, steady, selfcheck={"cpu_percent": 0.01, "min_samples": 1}))
    assert invalid.code == 4, invalid.out
    watched = open_page((invalid.run_dir / "report.html").as_uri())
    watched.screenshot("report-invalid")
    verdict = _verdict(watched, invalid)
    checks = _checks(watched.page)
    assert checks["Self-check"][0] == "Invalid" and "CPU p90" in checks["Self-check"][1], checks

    # compared with the real run as its baseline, on a simulator three times slower per step (exit 1)
    assert real_run.code == 0, real_run.out
    store = tmp_path / "baselines"
    saved = finishline("baseline", "save", str(real_run.run_dir), "--name", "ref", "--store", str(store))
    assert saved.returncode == 0, saved.stderr
    slow = tmp_path / "slow"
    slow.mkdir()
    scenario = _scenario(slow, {**steady, "users": 8, "duration": "4s"}, simulator="step_overhead_s: 0.03\n")
    compared = _run(slow, scenario, "--baseline", "ref", "--store", str(store))
    assert compared.code == 1, compared.out
    watched = open_page((compared.run_dir / "report.html").as_uri())
    watched.screenshot("report-regression")
    verdict = _verdict(watched, compared)
    checks = _checks(watched.page)
    assert checks["Baseline ref"][0] == "REGRESSION", checks
    worst = checks["Baseline ref"][1].split("The worst:")[1].strip().splitlines()
    assert len(worst) == 3 and all(line.startswith("steady, ") and line.endswith(": worse") for line in worst), worst
    assert watched.page.evaluate(_CLIPPED_JS) == []


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
    """Start with the form as prefilled runs the plan (warm-up, then steady); the LLM tab, the
    LLM server tab and the charts page fill; Edit to other users runs them as a phase of their own; Stop ends the run
    (exit 0: a load of one's own ended by Stop is its normal end) with its results written and
    no process left."""
    scenario = _scenario(
        tmp_path,
        {"name": "warmup", "kind": "warmup", "users": 2, "duration": "3s"},
        {"name": "steady", "users": 3, "duration": "120s"},
        metrics={"prometheus": True, "scrape_target": True},  # the server's own figures: the LLM server tab
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

        # the server's queue, running requests and KV cache, read from its /metrics (the simulator's vLLM names)
        page.get_by_role("tab", name="LLM server", exact=True).click()
        page.wait_for_function(
            """() => Array.from(document.querySelectorAll('table tbody tr')).some(tr =>
                /^\\d[\\d,]*\\s+[1-9][\\d,]*\\s+\\d+\\.\\d%$/.test(tr.innerText.trim()))""",
            timeout=15_000,
        )
        server = _tables(page, "table tbody tr")
        watched.screenshot("locust-web-ui-llm-server")
        _, running, kv = server[0]  # waiting: a number (the wait above), 0 while the server keeps up
        assert int(running) <= 3 and 0.0 < float(kv.rstrip("%")) <= 100.0, server  # the plan's 3 users at most

        charts = open_page(url + "/llm")
        charts.page.wait_for_function(
            "() => document.querySelectorAll('#chart-ttft polyline.series, #chart-tokens polyline.series').length >= 4"
            " && document.querySelectorAll('#chart-server polyline.series').length >= 1",
            timeout=15_000,
        )
        charts.screenshot("locust-web-ui-llm-charts")
        assert charts.blocked == [] and charts.console_errors == [], (charts.blocked, charts.console_errors)

        page.get_by_role("button", name="Edit", exact=True).click()  # another load while the plan runs
        page.wait_for_selector("input[name=userCount]", timeout=5_000)  # the Edit form (Start's is gone)
        page.fill("input[name=userCount]", "2")
        page.click("form button[type=submit]")
        page.get_by_role("tab", name="LLM", exact=True).click()
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
