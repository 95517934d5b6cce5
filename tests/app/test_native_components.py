"""headlab's own components (``PlotlyFigure``, ``ExportMenu``): what they send to the browser,
and where the pages use them. Drawing, choosing and downloading are tested in the browser."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest
from plotly.utils import PlotlyJSONEncoder

from app import ids
from app.components.common import card, export_menu
from app.components.heads import heads_layout, pattern_content
from app.components.native import ExportMenu, PlotlyFigure
from app.services.heads_view import HeadsInitial


def test_serialises_as_a_headlab_component_without_unset_props():
    figure = go.Figure(go.Heatmap(z=[[1, 2], [3, 4]]))
    sent = json.loads(
        json.dumps(
            PlotlyFigure(id="f", figure=figure, style={"height": "9px"}), cls=PlotlyJSONEncoder
        )
    )
    assert sent["namespace"] == "headlab" and sent["type"] == "PlotlyFigure"
    assert set(sent["props"]) == {"id", "figure", "style"}
    assert sent["props"]["figure"]["data"][0]["type"] == "heatmap"


def test_unknown_props_are_refused():
    with pytest.raises(TypeError):
        PlotlyFigure(id="f", clickData={})  # type: ignore[call-arg]


def find(node, wanted: str):
    if getattr(node, "id", None) == wanted:
        return node
    children = getattr(node, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str):
            found = find(child, wanted)
            if found is not None:
                return found
    return None


def test_heads_page_draws_its_heatmap_and_pattern_with_it():
    figure = go.Figure(go.Heatmap(z=[[0.5]]))
    layout = heads_layout(HeadsInitial([], 1, ["m"], "m", figure=figure))
    heatmap = find(layout, ids.HEADS_HEATMAP)
    assert isinstance(heatmap, PlotlyFigure) and heatmap.figure is figure
    assert heatmap.config["doubleClick"] is False
    pattern = pattern_content(figure)
    assert isinstance(pattern, PlotlyFigure) and pattern.id == ids.HEADS_PATTERN
    assert not isinstance(pattern_content(None), PlotlyFigure)  # a note until a head is picked


def test_export_menu_defaults_to_the_first_format_and_preset():
    menu = export_menu("heads-heatmap", {"kind": "heads", "run": 1})
    assert isinstance(menu, ExportMenu)
    assert menu.id == ids.export_id("heads-heatmap")
    assert (menu.format, menu.preset) == (menu.formats[0], menu.presets[0]) == ("svg", "column")
    assert menu.spec == {"kind": "heads", "run": 1} and menu.n_clicks == 0
    sent = json.loads(json.dumps(menu, cls=PlotlyJSONEncoder))
    assert sent["namespace"] == "headlab" and sent["type"] == "ExportMenu"
    with pytest.raises(ValueError, match="at least one format"):
        ExportMenu(id="m", formats=[], presets=["column"])


def test_a_card_keeps_its_export_menu():
    """A component without children has len() 0: the card must not drop it as falsy."""
    head = card("Layer × head", extra=export_menu("heads-heatmap")).children[0]
    assert isinstance(head.children[1], ExportMenu)
