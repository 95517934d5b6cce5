"""``PlotlyFigure``: a Dash component that draws a plotly figure in the page's first render.

``dcc.Graph`` loads lazily (``React.lazy`` + ``Suspense`` and a timer), so it draws one render
pass after the page around it. The Heads heatmap, the figure a full load waits for, uses this
component instead (``assets/plotly_figure.js``); it takes the same ``figure`` and ``config``.
Figures that need plotly events as Dash props (click, hover, relayout) stay ``dcc.Graph``.
"""

from __future__ import annotations

from typing import Any

from dash.development.base_component import Component

PROPS = ["id", "figure", "config", "style", "className"]


class PlotlyFigure(Component):
    _children_props: list[str] = []
    _base_nodes = ["children"]
    _namespace = "headlab"
    _type = "PlotlyFigure"

    def __init__(
        self,
        id: str,
        figure: Any = None,
        config: dict[str, Any] | None = None,
        style: dict[str, Any] | None = None,
        className: str | None = None,
    ) -> None:
        self._prop_names = list(PROPS)
        self._valid_wildcard_attributes: list[str] = []
        self.available_properties = list(PROPS)
        self.available_wildcard_properties: list[str] = []
        given = dict(id=id, figure=figure, config=config, style=style, className=className)
        super().__init__(**{k: v for k, v in given.items() if v is not None})
