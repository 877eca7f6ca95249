"""Small builders shared by the dashboards: queries, panels, variables, layout.

Every panel reads the Prometheus datasource chosen by the ``datasource`` variable, so the
same JSON works in the provisioned Grafana and in a user's own (``finishline grafana push``).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos, VariableRefresh

DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
GRAFANA_DS = DataSourceRef(type_val="grafana", uid="-- Grafana --")
ANNOTATION_TAG = "finishline"  # every annotation finishline writes carries it, plus the run id


def query(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref).datasource(DS)
    return q.instant() if instant else q.range()


def _targets(panel: object, queries: list[tuple[str, str]], instant: bool = False) -> None:
    for i, (expr, legend) in enumerate(queries):
        panel.with_target(query(expr, legend, chr(ord("A") + i), instant))  # type: ignore[attr-defined]


def series(title: str, unit: str, queries: list[tuple[str, str]], description: str = "") -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .unit(unit)
        .datasource(DS)
        .description(description)
        .line_width(1)
        .fill_opacity(8)
        .legend(common.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE).placement(cm.LegendPlacement.BOTTOM).show_legend(True).calcs(["lastNotNull", "max"]))
    )
    _targets(panel, queries)
    return panel


def single(title: str, unit: str, queries: list[tuple[str, str]], description: str = "") -> stat.Panel:
    panel = stat.Panel().title(title).unit(unit).datasource(DS).description(description)
    _targets(panel, queries, instant=True)
    return panel


def bars(title: str, unit: str, queries: list[tuple[str, str]], description: str = "") -> bargauge.Panel:
    panel = (
        bargauge.Panel()
        .title(title)
        .unit(unit)
        .datasource(DS)
        .description(description)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .display_mode(cm.BarGaugeDisplayMode.GRADIENT)
    )
    _targets(panel, queries, instant=True)
    return panel


def variables(board: dashboard.Dashboard, extra: list[tuple[str, str, bool]]) -> dashboard.Dashboard:
    """The datasource variable, then ``(name, label_values query, all-able)`` query variables."""
    board = board.with_variable(
        dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
    )
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

    def add(self, panel: object, w: int = 12, h: int = 8) -> None:
        if self.x + w > 24:
            self._newline()
        panel.grid_pos(GridPos(h=h, w=w, x=self.x, y=self.y))  # type: ignore[attr-defined]
        self.board = self.board.with_panel(panel)  # type: ignore[arg-type]
        self.x += w
        self.row_h = max(self.row_h, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
        self.x = 0
        self.row_h = 0
