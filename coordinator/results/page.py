"""The house style of finishline's pages (the run's report, a matrix's, a comparison's): one
self-contained HTML file, inline CSS and SVG, no script, nothing fetched.

On screen the body is at most 1,200 px wide and every table fits it (headings wrap; a table
too wide for its box scrolls inside it rather than widen the page). Printed, the page is A4:
tables and figures shrink to the paper's width, and a figure, a table row or the verdict is
not split across two pages.
"""

from __future__ import annotations

import html
from typing import Any

PAGE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
h2.part{font-size:1.3rem;margin-top:2.5rem;border-bottom:2px solid #bbb}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f4f4f4;font-weight:600}td.l,th.l{text-align:left;white-space:nowrap}td.t{text-align:left}
.banner{padding:.6rem 1rem;border-radius:6px;margin:.4rem 0}.ok{background:#e6f4ea}.warn{background:#fff4d6}.bad{background:#fde2e1}
pre{background:#f7f7f7;padding:.8rem;overflow:auto;font-size:.8rem}figure{margin:1rem 0}svg{max-width:100%;height:auto}
.note{color:#666;font-size:.85rem}.wrap{overflow-x:auto;max-width:100%}
.figures{display:flex;flex-wrap:wrap;gap:.5rem;margin:.6rem 0;padding:0}
.figures div{border:1px solid #ddd;border-radius:6px;padding:.35rem .8rem;min-width:7rem}
.figures dt{color:#666;font-size:.8rem}.figures dd{margin:0;font-size:1.25rem;font-weight:600}
table.checks td.v{font-weight:600;white-space:nowrap;text-align:left}table.checks ul{margin:.2rem 0;padding-left:1.2rem}
@page{size:A4;margin:12mm}
@media print{
html{font-size:9pt}body{max-width:none;margin:0;padding:0}
h2{break-after:avoid}h3{break-after:avoid}
figure,tr,.banner,.figures,table.checks,section#verdict{break-inside:avoid}
table{font-size:7.5pt}th,td{padding:.1rem .25rem}td.l,th.l{white-space:normal;overflow-wrap:break-word}
.wrap{overflow:visible}pre{white-space:pre-wrap;overflow-wrap:anywhere;overflow:visible;font-size:7pt}
}
"""


def esc(value: Any) -> str:
    """``value`` as HTML text."""
    return html.escape(str(value))


def num(value: Any, digits: int = 1) -> str:
    """A number as the report shows it (thousands separated, ``digits`` decimals for a float); – for none."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else esc(value)


def section(ident: str, title: str, *body: str) -> str:
    """A titled block with an id, so a reader can link to it (``report.html#errors``)."""
    return f"<section id='{ident}'><h2>{esc(title)}</h2>\n" + "\n".join(b for b in body if b) + "</section>"


def figure(svg: str | None, caption: str) -> str:
    """An inline SVG with its caption; nothing without a figure."""
    if svg is None:
        return ""
    return f"<figure>{svg}<figcaption class='note'>{esc(caption)}</figcaption></figure>"


def html_page(title: str, *body: str, css: str = PAGE_CSS) -> str:
    """A whole self-contained page in the house style, ``body`` in order."""
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{css}</style></head><body><h1>{esc(title)}</h1>\n" + "\n".join(b for b in body if b) + "</body></html>"
    )
