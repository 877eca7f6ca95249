"""The report's container section: cold-start steps, the cold penalty, verdicts, resources.

Reads what the Docker target and the cold-start phase left in the run directory
(``cold_start.json``, ``container.json``) and returns an HTML fragment (inline SVG), or
'' for runs without a Docker target, so the coordinator's report just appends it.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from coordinator.results.coldstart import RESULT_FILE, STEPS, ColdStartResult
from coordinator.results.figures import to_svg  # also sets the backend and style of every figure

STEP_LABELS = {
    "create": "container create",
    "start": "create -> process started",
    "port_open": "started -> port open",
    "ready": "port open -> ready (health 200)",
    "first_token": "ready -> first token",
    "to_ready": "total: create -> ready",
    "to_first_token": "total: create -> first token",
}
VERDICTS = {
    "oom": "OOM: the container was killed at its memory limit while starting; raise target.memory.",
    "exited": "The container exited before it was ready (see container.log).",
    "timeout": "The container was not ready within readiness_timeout_s.",
}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.1f}"


def step_table(steps: dict[str, list[float]]) -> str:
    """One row per step: n, min, p50, p90, max, mean (ms) over the cold starts."""
    rows = []
    for name in STEPS:
        values = steps.get(name) or []
        if values:
            arr = np.asarray(values)
            cells = [
                str(arr.size),
                *(
                    _ms(float(x))
                    for x in (arr.min(), np.percentile(arr, 50), np.percentile(arr, 90), arr.max(), arr.mean())
                ),
            ]
        else:
            cells = ["0"] + ["-"] * 5
        rows.append(
            f"<tr><th>{html.escape(STEP_LABELS[name])}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        )
    head = (
        "<tr><th>step</th><th>n</th><th>min ms</th><th>p50 ms</th><th>p90 ms</th><th>max ms</th><th>mean ms</th></tr>"
    )
    return f"<table class='cold-steps'>{head}{''.join(rows)}</table>"


def steps_figure(data: ColdStartResult) -> str | None:
    """Each step's distribution (one point per start), and cold vs warm TTFT side by side."""
    steps = data.steps
    parts = [name for name in STEPS[:5] if steps.get(name)]
    if not parts:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.2), gridspec_kw={"width_ratios": [3, 1]})
    left.boxplot([np.asarray(steps[p]) * 1000 for p in parts], orientation="horizontal", tick_labels=parts)
    left.set_xlabel("ms")
    left.set_title("cold-start steps (one sample per start)")
    series = [(label, values) for label, values in (("cold", data.cold_ttft), ("warm", data.warm_ttft)) if values]
    if series:
        right.boxplot([np.asarray(v) * 1000 for _, v in series], tick_labels=[s for s, _ in series])
        right.set_ylabel("TTFT ms")
        right.set_title("first request: cold vs warm")
    return to_svg(fig)


def resources_table(containers: list[dict[str, Any]]) -> str:
    rows = []
    for c in containers:
        stats = c.get("stats") or {}
        peak = stats.get("memory_peak")
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    c["number"],
                    c["id"][:12],
                    c.get("verdict") or "ok",
                    c.get("exit_code"),
                    "yes" if c.get("oom_killed") else "no",
                    c.get("restarts", 0),
                    stats.get("cpu_mean", "-"),
                    stats.get("cpu_max", "-"),
                    "-" if peak is None else f"{peak / 2**20:,.0f}",
                    stats.get("memory_failcnt", 0),
                )
            )
            + "</tr>"
        )
    head = (
        "<tr><th>#</th><th>container</th><th>verdict</th><th>exit</th><th>OOM killed</th><th>restarts</th>"
        "<th>CPU mean %</th><th>CPU max %</th><th>memory peak MiB</th><th>limit hits</th></tr>"
    )
    return f"<table class='containers'>{head}{''.join(rows)}</table>"


def render_container_section(run_dir: Path) -> str:
    """The HTML fragment for ``report.html``; '' when the run had no Docker target."""
    cold_path, containers_path = run_dir / RESULT_FILE, run_dir / "container.json"
    if not cold_path.exists() and not containers_path.exists():
        return ""
    out = ["<section id='containers'><h2>Container target</h2>"]
    verdicts = []
    if cold_path.exists():
        data = ColdStartResult.model_validate_json(cold_path.read_bytes())
        verdicts.append(data.verdict)
        out.append(f"<h3>Cold starts ({len(data.starts)}, phase {html.escape(data.phase)})</h3>")
        penalty = data.cold_penalty
        cold, warm = data.cold_ttft, data.warm_ttft
        if penalty is not None:
            out.append(
                f"<p class='cold-penalty'>Cold penalty: first-request TTFT p50 {_ms(float(np.median(cold)))} ms cold"
                f" vs {_ms(float(np.median(warm)))} ms warm: <b>{_ms(penalty)} ms</b>"
                f" ({len(cold)} cold, {len(warm)} warm requests).</p>"
            )
        out.append(
            f"<p>Requests refused while the model was loading: <b>{data.refused_while_loading}</b>"
            " (kept as records of workload <code>loading_probe</code>).</p>"
        )
        out.append(step_table(data.steps))
        figure = steps_figure(data)
        if figure:
            out.append(figure)
    if containers_path.exists():
        containers = json.loads(containers_path.read_text())
        verdicts.extend(c.get("verdict") for c in containers)
        out.append("<h3>Containers and resources</h3>")
        out.append(resources_table(containers))
    verdict = next((v for v in verdicts if v), None)
    if verdict:
        out.insert(1, f"<p class='verdict bad'><b>Verdict: {html.escape(VERDICTS.get(verdict, verdict))}</b></p>")
        out.append(_log_tail(run_dir / "container.log"))
    out.append("</section>")
    return "\n".join(out)


def _log_tail(log: Path, lines: int = 40) -> str:
    """The container log's last lines: why it failed is usually there."""
    tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
    if not tail:
        return ""
    return f"<h3>container.log (last lines)</h3><pre>{html.escape(chr(10).join(tail))}</pre>"
