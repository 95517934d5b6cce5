"""headlab's own Dash components (``assets/components.js``, namespace ``headlab``).

Each stands in for several Dash components that dash-renderer would wrap and render one by
one, on the pages' hot paths:

- ``PlotlyFigure`` draws a plotly figure in the page's first render; every figure of the
  workbench is one (``components.common.graph``). ``dcc.Graph`` loads lazily (``React.lazy``
  + ``Suspense`` and a timer), so it draws one render pass after the page around it. It takes
  the same ``figure`` and ``config``; plotly events are not Dash props (no page uses them:
  the Heads heatmap's clicks are read by ``assets/keys.js``).
- ``ExportMenu`` is a figure's export controls: the figure's ``spec``, format and paper-preset
  radio buttons under a disclosure, an Export button (``n_clicks``), the ``download`` the
  server answers with (saved by the browser) and the last ``error``. It was twelve Dash
  components per figure.
"""

from __future__ import annotations

from typing import Any

from dash.development.base_component import Component

NAMESPACE = "headlab"


class NativeComponent(Component):
    """A component of the ``headlab`` namespace: props are exactly ``PROPS``. Each subclass
    sets ``_namespace`` and ``_children_props`` in its own body: Dash registers them per class
    from the body, and dash-renderer's walk of the layout fails on a component without them."""

    PROPS: tuple[str, ...] = ()
    _base_nodes = ["children"]

    def __init__(self, **props: Any) -> None:
        self._prop_names = list(self.PROPS)
        self._valid_wildcard_attributes: list[str] = []
        self.available_properties = list(self.PROPS)
        self.available_wildcard_properties: list[str] = []
        unknown = sorted(set(props) - set(self.PROPS))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no prop {', '.join(unknown)}")
        super().__init__(**{k: v for k, v in props.items() if v is not None})


class PlotlyFigure(NativeComponent):
    PROPS = ("id", "figure", "config", "style", "className")
    _namespace = NAMESPACE
    _type = "PlotlyFigure"
    _children_props: list[str] = []

    def __init__(
        self,
        id: str | dict[str, Any],
        figure: Any = None,
        config: dict[str, Any] | None = None,
        style: dict[str, Any] | None = None,
        className: str | None = None,
    ) -> None:
        super().__init__(id=id, figure=figure, config=config, style=style, className=className)


class ExportMenu(NativeComponent):
    PROPS = (
        "id",
        "spec",
        "formats",
        "presets",
        "format",
        "preset",
        "n_clicks",
        "download",
        "error",
    )
    _namespace = NAMESPACE
    _type = "ExportMenu"
    _children_props: list[str] = []

    def __init__(
        self,
        id: str | dict[str, Any],
        formats: list[str],
        presets: list[str],
        spec: dict[str, Any] | None = None,
        format: str | None = None,
        preset: str | None = None,
        n_clicks: int = 0,
        error: str = "",
    ) -> None:
        if not formats or not presets:
            raise ValueError("an export menu needs at least one format and one preset")
        super().__init__(
            id=id,
            spec=spec,
            formats=list(formats),
            presets=list(presets),
            format=format or formats[0],
            preset=preset or presets[0],
            n_clicks=n_clicks,
            error=error,
        )
