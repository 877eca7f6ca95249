"""Small builders shared by the dashboards: queries, panels, variables, layout.

Every panel reads the Prometheus datasource chosen by the ``datasource`` variable, so the
same JSON works in the provisioned Grafana and in a user's own (``finishline grafana push``).
"""

from __future__ import annotations

from typing import TypeVar

from grafana_foundation_sdk.builders import bargauge, common, dashboard, prometheus, stat, text, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import text as text_model
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos, VariableRefresh

from dashboards import names as n

DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
GRAFANA_DS = DataSourceRef(type_val="grafana", uid="-- Grafana --")
ANNOTATION_TAG = "finishline"  # every annotation finishline writes carries it, plus the run id


def query(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref).datasource(DS)
    return q.instant() if instant else q.range()


def latency_quantile(name: str, q: float, selector: str, window: str, by: str = "") -> str:
    """PromQL: quantile ``q`` of latency ``name`` over successful requests, from the buckets' rate
    over ``window``; ``by``: labels to keep a series for (besides ``le``)."""
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({n.ok_buckets(name, selector)}[{window}])))"


P = TypeVar("P", timeseries.Panel, stat.Panel, bargauge.Panel, text.Panel)


def _panel(panel: P, title: str, unit: str, queries: list[tuple[str, str]], description: str, instant: bool) -> P:
    """What every panel has: title, unit, the datasource, a description and its queries A, B, ..."""
    panel = panel.title(title).unit(unit).datasource(DS).description(description)
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(query(expr, legend, chr(ord("A") + i), instant))
    return panel


def note(title: str, markdown: str) -> text.Panel:
    """A panel of text (Markdown) that queries nothing: where to find what Prometheus cannot hold."""
    return text.Panel().title(title).content(markdown).mode(text_model.TextMode.MARKDOWN)


def series(title: str, unit: str, queries: list[tuple[str, str]], description: str = "") -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .line_width(1)
        .fill_opacity(8)
        .legend(
            common.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
    )
    return _panel(panel, title, unit, queries, description, instant=False)


def single(title: str, unit: str, queries: list[tuple[str, str]], description: str = "") -> stat.Panel:
    return _panel(stat.Panel(), title, unit, queries, description, instant=True)


def bars(title: str, unit: str, queries: list[tuple[str, str]], description: str = "") -> bargauge.Panel:
    panel = bargauge.Panel().orientation(cm.VizOrientation.HORIZONTAL).display_mode(cm.BarGaugeDisplayMode.GRADIENT)
    return _panel(panel, title, unit, queries, description, instant=True)


def variables(board: dashboard.Dashboard, extra: list[tuple[str, str, bool]]) -> dashboard.Dashboard:
    """The datasource variable, then ``(name, label_values query, all-able)`` query variables."""
    board = board.with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    for name, values_query, all_able in extra:
        var = (
            dashboard.QueryVariable(name)
            .label(name.capitalize())
            .datasource(DS)
            .query(values_query)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        )
        if all_able:
            var = var.multi(True).include_all(True).all_value(".*")
        board = board.with_variable(var)
    return board


def run_annotations(board: dashboard.Dashboard) -> dashboard.Dashboard:
    """Show the run-start/phase/run-end annotations written by ``finishline grafana push``."""
    return board.annotation(
        dashboard.AnnotationQuery()
        .name("finishline run events")
        .datasource(GRAFANA_DS)
        .enable(True)
        .icon_color("rgba(255, 96, 96, 1)")
        .target(dashboard.AnnotationTarget().limit(500).match_any(False).tags([ANNOTATION_TAG]).type("tags"))
    )


def board(
    title: str, uid: str, description: str, since: str, extra: list[tuple[str, str, bool]], refresh: str | None = None
) -> Grid:
    """A finishline dashboard (tag, ``variables``, ``run_annotations``), ready for panels."""
    new = dashboard.Dashboard(title).uid(uid).tags(["finishline"])
    if refresh is not None:
        new = new.refresh(refresh)
    new = new.time(since, "now").description(description)
    return Grid(run_annotations(variables(new, extra)))


class Grid:
    """Places panels left to right in Grafana's 24-column grid, rows as titled separators."""

    def __init__(self, board: dashboard.Dashboard) -> None:
        self.board = board
        self.x = 0
        self.y = 0
        self.row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.board = self.board.with_row(dashboard.Row(title).grid_pos(GridPos(h=1, w=24, x=0, y=self.y)))
        self.y += 1

    def add(self, panel: P, w: int = 12, h: int = 8) -> None:
        if self.x + w > 24:
            self._newline()
        self.board = self.board.with_panel(panel.grid_pos(GridPos(h=h, w=w, x=self.x, y=self.y)))
        self.x += w
        self.row_h = max(self.row_h, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
        self.x = 0
        self.row_h = 0
