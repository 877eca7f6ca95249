"""A matrix's ``report.html``: its verdict, its axes, and the variants side by side per phase, each
variant's name linking to its own run's report."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from matplotlib import pyplot as plt

from coordinator.results.figures import to_svg
from coordinator.results.files import write_atomic
from coordinator.results.matrix import COLUMNS, MATRIX_FILE, MatrixResult, cell, status
from coordinator.results.page import html_page
from coordinator.results.summary import ALL
from coordinator.results.verdict import verdict_banner


def _e(value: object) -> str:
    return html.escape(str(value))


def html_table(result: MatrixResult, phase: str) -> str:
    axes = list(result.axes)
    head = (
        "<tr><th class='l'>variant</th>"
        + "".join(f"<th class='l'>{_e(axis)}</th>" for axis in axes)
        + "<th class='l'>outcome</th>"
        + "".join(f"<th>{_e(h)}{' ' + _e(u) if u else ''}</th>" for h, u, _ in COLUMNS)
        + "</tr>"
    )
    rows = []
    for v in result.variants:
        link = f"<a href='{_e(v.run_dir)}/report.html'>{_e(v.name)}</a>" if v.ran else _e(v.name)
        rows.append(
            f"<tr><td class='l'>{link}</td>"
            + "".join(f"<td class='l'>{_e(v.values.get(axis, ''))}</td>" for axis in axes)
            + f"<td class='l'>{_e(status(v))}</td>"
            + "".join(f"<td>{cell(v.phases.get(phase), attr)}</td>" for _, _, attr in COLUMNS)
            + "</tr>"
        )
    return f"<div class='wrap'><table>{head}{''.join(rows)}</table></div>"


_FIGURES: tuple[tuple[str, str], ...] = (
    ("output_tokens_per_s", "output tokens/s"),
    ("ttft_p50_ms", "TTFT p50 ms"),
    ("tpot_p50_ms", "TPOT p50 ms"),
)


def figure(result: MatrixResult) -> str | None:
    """Output tokens/s, TTFT p50 and TPOT p50 of each variant, per measured phase."""
    phases = [p for p in result.phase_names() if p != ALL] or [ALL]
    ran = [v for v in result.variants if v.ran]
    if not ran:
        return None
    fig, axes = plt.subplots(1, len(_FIGURES), figsize=(13, 3.2), layout="constrained")
    x = np.arange(len(phases))
    width = 0.8 / len(ran)
    for i, variant in enumerate(ran):
        for ax, (attr, _) in zip(axes, _FIGURES, strict=True):
            ys = [getattr(variant.phases[p], attr) if p in variant.phases else None for p in phases]
            ax.bar(
                x + (i - (len(ran) - 1) / 2) * width,
                [float("nan") if y is None else y for y in ys],
                width,
                label=variant.name,
            )
    for ax, (_, label) in zip(axes, _FIGURES, strict=True):
        ax.set_ylabel(label)
        ax.set_xticks(x, phases, fontsize=8)
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return to_svg(fig)


def render(result: MatrixResult) -> str:
    axes = "".join(
        f"<li><code>{_e(axis)}</code>: {_e(', '.join(map(str, values)))}</li>" for axis, values in result.axes.items()
    )
    svg = figure(result)
    tables = "".join(
        f"<h3>{'Whole run (warm-ups left out)' if phase == ALL else 'Phase ' + _e(phase)}</h3>{html_table(result, phase)}"
        for phase in result.phase_names()
    )
    return html_page(
        f"finishline — {result.scenario} — matrix {result.id}",
        f"<section id='verdict'>{verdict_banner(result.outcome, result.headline)}</section>",
        f"<p>{len(result.variants)} variants, each a run of its own in a fresh target, axes:</p><ul>{axes}</ul>",
        "<section id='variants'><h2>Variants side by side</h2>"
        + (f"<figure>{svg}<figcaption class='note'>Per measured phase.</figcaption></figure>" if svg else "")
        + tables
        + "<p class='note'>Latencies in ms over successful requests; errors: % of requests that failed; goodput: "
        "requests/s that succeeded and met every SLO. Each variant's name links to its own report.</p></section>",
    )


def write_matrix(matrix_dir: Path, result: MatrixResult) -> None:
    """``matrix.json`` and ``report.html`` in the matrix's directory."""
    write_atomic(matrix_dir / MATRIX_FILE, result.model_dump_json(indent=2) + "\n")
    write_atomic(matrix_dir / "report.html", render(result))
