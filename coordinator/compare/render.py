"""A comparison in the format asked for: text, Markdown, HTML or JSON (``compare.json``)."""

from __future__ import annotations

from coordinator.compare.result import Comparison
from coordinator.compare.sides import Side
from coordinator.compare.tables import markdown, text


def render(result: Comparison, fmt: str, current: Side, baseline: Side) -> str:
    if fmt == "json":
        return result.model_dump_json(indent=2) + "\n"
    if fmt == "md":
        return markdown(result)
    if fmt == "html":
        from coordinator.compare.page import page  # matplotlib: only when asked for

        return page(result, current, baseline)
    return text(result)
