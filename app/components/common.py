"""Layout pieces shared by every page: cards, graphs with an export menu, tables with CSV."""

from __future__ import annotations

import json
from typing import Any

from dash import dash_table, html

from app import ids
from app.components.native import ExportMenu, PlotlyFigure

FORMATS = ("svg", "pdf", "png")
DEFAULT_PRESETS = ("column", "text")
GRAPH_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"scale": 2}}


def export_presets() -> tuple[str, ...]:
    """Preset names offered by the export engine (falls back to the two standard ones)."""
    try:
        from app.export.presets import PRESETS
    except ImportError:
        return DEFAULT_PRESETS
    return tuple(PRESETS) or DEFAULT_PRESETS


def page(title: str, *children: Any, subtitle: str | None = None) -> html.Div:
    header: list[Any] = [html.H1(title)]
    if subtitle:
        header.append(html.P(subtitle, className="subtitle"))
    return html.Div([html.Div(header, className="page-header"), *children], className="page")


def card(title: str | None, *children: Any, class_name: str = "", extra: Any = None) -> html.Div:
    head = []
    if title is not None:
        head = [
            html.Div(
                [html.H2(title), extra] if extra is not None else [html.H2(title)],
                className="card-head",
            )
        ]
    return html.Div([*head, *children], className=f"card {class_name}".strip())


def message(text: str | None, kind: str = "info", id: str | None = None) -> html.Div:
    props: dict[str, Any] = {"className": f"message {kind}" if text else "message empty"}
    if id is not None:
        props["id"] = id
    return html.Div(text or "", **props)


def export_menu(figure: str, spec: dict[str, Any] | None = None) -> ExportMenu:
    """A figure's export menu (format and paper preset, first the kind's own preset; the server
    rebuilds the figure from ``spec``, which the page's callbacks keep current)."""
    from app.services.figures import KINDS

    kind = KINDS.get(str(spec.get("kind"))) if spec else None
    return ExportMenu(
        id=ids.export_id(figure),
        formats=list(FORMATS),
        presets=list(export_presets()),
        preset=kind.preset if kind else None,
        spec=spec,
    )


def graph(
    graph_id: str,
    figure: Any = None,
    *,
    height: int | None = None,
    config: dict[str, Any] | None = None,
) -> PlotlyFigure:
    """A figure drawn with the page (``PlotlyFigure``); ``config`` adds to ``GRAPH_CONFIG``."""
    return PlotlyFigure(
        id=graph_id,
        figure=figure if figure is not None else empty_figure(),
        config={**GRAPH_CONFIG, **(config or {})},
        style={"height": f"{height}px"} if height else None,
    )


def figure_card(
    title: str,
    graph_id: str,
    figure_name: str,
    *,
    figure: Any = None,
    spec: Any = None,
    height: int | None = None,
    class_name: str = "",
) -> html.Div:
    return card(
        title,
        graph(graph_id, figure, height=height),
        extra=export_menu(figure_name, spec),
        class_name=class_name,
    )


def empty_figure(text: str = "") -> dict[str, Any]:
    """A blank plotly figure (a dict, so no plotly import is needed to show nothing)."""
    layout: dict[str, Any] = {
        "xaxis": {"visible": False},
        "yaxis": {"visible": False},
        "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        "plot_bgcolor": "white",
        "paper_bgcolor": "white",
    }
    if text:
        layout["annotations"] = [
            {
                "text": text,
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "font": {"size": 14, "color": "#667"},
            }
        ]
    return {"data": [], "layout": layout}


def data_table(
    table_id: str,
    rows: list[dict[str, Any]],
    columns: list[str] | None = None,
    *,
    page_size: int = 15,
    sortable: bool = True,
    filterable: bool = False,
    **props: Any,
) -> Any:  # a dash_table.DataTable (absent from dash's type stubs)
    """A sortable table with a built-in CSV download of all its rows."""
    columns = columns if columns is not None else (list(rows[0]) if rows else [])
    return dash_table.DataTable(  # type: ignore[attr-defined]
        id=table_id,
        data=table_data(rows),
        columns=[{"name": c.replace("_", " "), "id": c} for c in columns],
        page_size=page_size,
        sort_action="native" if sortable else "none",
        filter_action="native" if filterable else "none",
        export_format="csv",
        export_headers="display",
        style_table={"overflowX": "auto"},
        style_cell={
            "fontFamily": "inherit",
            "fontSize": "13px",
            "padding": "4px 8px",
            "textAlign": "left",
            "maxWidth": "360px",
            "overflow": "hidden",
            "textOverflow": "ellipsis",
        },
        style_header={"fontWeight": "600", "backgroundColor": "#f3f5f8"},
        **props,
    )


def table_data(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as a DataTable shows them: floats rounded, dicts and lists as JSON text."""
    return [{k: _cell(v) for k, v in r.items()} for r in rows]


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def options(values: list[Any], labels: dict[Any, str] | None = None) -> list[dict[str, Any]]:
    labels = labels or {}
    return [{"label": labels.get(v, str(v)), "value": v} for v in values]
