"""``/llm``: live charts of the LLM figures, one self-contained page (no external fetch; its own
script polls ``/llm/data`` every 2 s and draws inline SVG)."""

from __future__ import annotations

LLM_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>finishline: LLM charts</title>
<link rel="icon" href="data:,">
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 1rem; }
figure { margin: 0; border: 1px solid #ddd; border-radius: 6px; padding: .5rem; }
figcaption { font-weight: 600; margin-bottom: .25rem; }
svg { width: 100%; height: 200px; }
svg text { font-size: 11px; fill: #555; }
.legend span { display: inline-block; margin-right: 1rem; font-size: 12px; }
.legend i { display: inline-block; width: 12px; height: 3px; margin-right: 4px; vertical-align: middle; }
</style></head>
<body>
<h1>LLM figures, live</h1>
<p id="status">waiting for the first figures ...</p>
<div class="charts" id="charts"></div>
<script>
"use strict";
const CHARTS = [
  ["ttft", "TTFT ms", [["p50", w => w.ttft.p50], ["p99", w => w.ttft.p99]]],
  ["tpot", "TPOT ms", [["p50", w => w.tpot.p50], ["p99", w => w.tpot.p99]]],
  ["itl", "ITL ms", [["p50", w => w.itl.p50], ["p99", w => w.itl.p99]]],
  ["e2e", "E2E ms", [["p50", w => w.e2e.p50], ["p99", w => w.e2e.p99]]],
  ["tokens", "output tokens/s", [["", w => w.output_tokens_per_s]]],
  ["errors", "failed requests (run so far)", [["", w => Object.values(w.errors_by_class).reduce((a, b) => a + b, 0)]]],
];
const SERVER = [["waiting", s => s.waiting], ["running", s => s.running], ["KV cache %", s => s.kv_usage === null ? null : 100 * s.kv_usage]];
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
const NS = "http://www.w3.org/2000/svg";

function el(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function draw(id, title, series) {
  let fig = document.getElementById("chart-" + id);
  if (!fig) {
    fig = document.createElement("figure");
    fig.id = "chart-" + id;
    document.getElementById("charts").appendChild(fig);
  }
  fig.innerHTML = "";
  const cap = document.createElement("figcaption");
  cap.textContent = title;
  fig.appendChild(cap);
  const W = 420, H = 200, L = 52, R = 8, T = 8, B = 22;
  const svg = el("svg", {viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none"}, fig);
  const points = series.flatMap(s => s.points);
  if (!points.length) { el("text", {x: L, y: H / 2}, svg).textContent = "no data yet"; return; }
  const xs = points.map(p => p[0]), ys = points.map(p => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y1 = Math.max(...ys, 1e-9);
  const X = x => L + (x - x0) / (x1 - x0) * (W - L - R), Y = y => H - B - y / y1 * (H - T - B);
  el("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999"}, svg);
  el("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#999"}, svg);
  el("text", {x: 2, y: T + 10}, svg).textContent = y1.toLocaleString(undefined, {maximumFractionDigits: 1});
  el("text", {x: 2, y: H - B}, svg).textContent = "0";
  el("text", {x: L, y: H - 6}, svg).textContent = x0.toFixed(0) + " s";
  el("text", {x: W - R - 40, y: H - 6}, svg).textContent = x1.toFixed(0) + " s";
  const legend = document.createElement("div");
  legend.className = "legend";
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    if (s.points.length) {
      el("polyline", {points: s.points.map(p => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" "),
                      fill: "none", stroke: colour, "stroke-width": 2, class: "series"}, svg);
    }
    const item = document.createElement("span");
    item.innerHTML = `<i style="background:${colour}"></i>`;
    item.appendChild(document.createTextNode(s.label));
    legend.appendChild(item);
  });
  fig.appendChild(legend);
}

function render(views) {
  if (!views.length) return;
  const last = views[views.length - 1];
  document.getElementById("status").textContent =
    `phase ${last.phase}, ${last.t.toFixed(0)} s into the run; latencies over the last ${last.window_s.toFixed(0)} s`;
  const workloads = [...new Set(views.flatMap(v => v.workloads.map(w => w.workload)))].sort();
  for (const [id, title, parts] of CHARTS) {
    const series = [];
    for (const name of workloads) for (const [part, pick] of parts) {
      const points = [];
      for (const v of views) {
        const w = v.workloads.find(w => w.workload === name);
        const y = w ? pick(w) : null;
        if (y !== null && y !== undefined && isFinite(y)) points.push([v.t, y]);
      }
      series.push({label: part ? `${name} ${part}` : name, points});
    }
    draw(id, title, series);
  }
  if (views.some(v => v.server)) {
    draw("server", "server", SERVER.map(([label, pick]) => ({label, points: views.filter(v => v.server)
      .map(v => [v.t, pick(v.server)]).filter(p => p[1] !== null)})));
  }
}

async function poll() {
  try {
    const answer = await fetch("llm/data", {cache: "no-store"});
    if (answer.ok) render((await answer.json()).views);
  } catch (e) {
    document.getElementById("status").textContent = "the run has ended (no answer from its master)";
  }
  setTimeout(poll, 2000);
}
poll();
</script>
</body></html>
"""
