"""Heads page: run → metrics, metric → heatmap, click/arrow key → head detail, per position."""

from __future__ import annotations

import dash
from dash import Input, Output, State

from app import ids
from app.callbacks.wiring import ClientsideCallback, Fired, callback
from app.components.common import empty_figure
from app.components.heads import (
    head_figures,
    pattern_content,
    position_content,
    run_figures,
    sae_list,
    scores_table,
)
from app.services import heads_view
from app.services.context import WebContext
from app.services.figures import page_figure
from storage.errors import StoreError

PATTERN_SPEC = ids.export_id("heads-pattern")
HEATMAP_SPEC = ids.export_id("heads-heatmap")
POSITION_SPEC = ids.export_id("heads-position")


HIGHLIGHT_JS = """
function (selected) {
    const gd = document.querySelector('#GRAPH_ID .js-plotly-plot');
    if (!gd || !gd.on || !selected) { return; }
    gd._headOutline = selected;
    const place = () => {
        const full = gd._fullLayout, holder = gd.querySelector('.svg-container');
        if (!full || !full.xaxis || !holder || !gd._headOutline) { return; }
        let box = holder.querySelector('.head-outline');
        if (!box) {
            box = document.createElement('div');
            box.className = 'head-outline';
            box.style.cssText = 'position:absolute;pointer-events:none;border:2px solid #111;'
                + 'box-sizing:border-box;z-index:5';
            holder.appendChild(box);
        }
        const [layer, head] = gd._headOutline, size = full._size;
        const xs = [head - 0.5, head + 0.5].map(full.xaxis.l2p);
        const ys = [layer - 0.5, layer + 0.5].map(full.yaxis.l2p);
        box.style.left = (size.l + Math.min(...xs)) + 'px';
        box.style.top = (size.t + Math.min(...ys)) + 'px';
        box.style.width = Math.abs(xs[1] - xs[0]) + 'px';
        box.style.height = Math.abs(ys[1] - ys[0]) + 'px';
    };
    if (!gd._headOutlineHooked) {
        gd._headOutlineHooked = true;
        gd.on('plotly_afterplot', place);  // redrawn (new metric, resize): follow the cell
    }
    place();
}
""".replace("GRAPH_ID", ids.HEADS_HEATMAP)


@callback(
    Output(ids.HEADS_METRIC, "options"),
    Output(ids.HEADS_METRIC, "value"),
    Output(ids.HEADS_PROMPT, "options"),
    Output(ids.HEADS_PROMPT, "value"),
    Output(ids.HEADS_POSITION_METRIC, "options"),
    Output(ids.HEADS_POSITION_METRIC, "value"),
    Output(ids.HEADS_RUN_FIGURES, "children"),
    Output(ids.HEADS_HEAD_FIGURES, "children", allow_duplicate=True),
    Input(ids.HEADS_RUN, "value"),
    State(ids.HEADS_METRIC, "value"),
    prevent_initial_call=True,
)
def pick_run(ctx: WebContext, run_id: int, metric: str | None) -> tuple:
    state = heads_view.choices(ctx, int(run_id), metric)  # figures: the pickers' callbacks
    run = ctx.store.get_run(int(run_id))
    return (
        state.metric_options,
        state.metric,
        state.prompt_options,
        state.prompt,
        state.position_options,
        state.position_choice,
        run_figures(heads_view.taxonomy_run_figures(ctx, run)),
        [],  # the head figures were the previous run's; a click draws this run's
    )


@callback(
    Output(ids.HEADS_HEATMAP, "figure"),
    Output(HEATMAP_SPEC, "spec"),
    Input(ids.HEADS_METRIC, "value"),
    State(ids.HEADS_RUN, "value"),
    prevent_initial_call=True,
)
def show_metric(ctx: WebContext, metric: str | None, run_id: int) -> tuple:
    if not metric:
        return empty_figure(f"Run #{run_id} stores no per-head metrics."), None
    spec = heads_view.heatmap_spec(int(run_id), metric)
    return page_figure(ctx.reader, spec), spec


@callback(
    Output(ids.HEADS_SELECTED, "data"),
    Output(ids.HEADS_DETAIL_TITLE, "children"),
    Output(ids.HEADS_PATTERN_BOX, "children"),
    Output(PATTERN_SPEC, "spec"),
    Output(ids.HEADS_SCORES, "children"),
    Output(ids.HEADS_SAE, "children"),
    # per-position grids of the selected head come in the same response (one round trip)
    Output(ids.HEADS_POSITION_BOX, "children", allow_duplicate=True),
    Output(POSITION_SPEC, "spec", allow_duplicate=True),
    Output(ids.HEADS_HEAD_FIGURES, "children"),
    Input(ids.HEADS_CLICK, "data"),
    Input(ids.HEADS_KEY, "data"),
    Input(ids.HEADS_PROMPT, "value"),
    State(ids.HEADS_SELECTED, "data"),
    State(ids.HEADS_RUN, "value"),
    State(ids.HEADS_METRIC, "value"),
    State(ids.HEADS_POSITION_METRIC, "value"),
    prevent_initial_call=True,
    fired=True,
)
def select_head(
    ctx: WebContext,
    fired: Fired,
    click: dict | None,
    key: dict | None,
    prompt: int | None,
    selected: list[int] | None,
    run_id: int,
    metric: str | None,
    position_choice: str | None,
) -> tuple:
    if fired.id == ids.HEADS_CLICK and click and metric:
        shape = heads_view.grid_shape(ctx, int(run_id), metric)
        selected = heads_view.clamp([int(click["layer"]), int(click["head"])], *shape)
    elif fired.id == ids.HEADS_KEY and key and metric:
        shape = heads_view.grid_shape(ctx, int(run_id), metric)
        selected = heads_view.move(selected, key.get("key", ""), *shape)
    if not selected:
        return (dash.no_update,) * 9
    positions: tuple = (dash.no_update,) * 2
    if fired.id != ids.HEADS_PROMPT and heads_view.position_follows_head(ctx, position_choice):
        view = heads_view.position_view(ctx, position_choice, selected)
        positions = (position_content(view), view.spec)
    try:
        detail = heads_view.head_detail(ctx, int(run_id), selected[0], selected[1], prompt)
    except StoreError as exc:
        note = pattern_content(None, str(exc))
        return selected, str(exc), note, None, "", "", *positions, []
    pattern = pattern_content(
        detail.pattern_figure,
        "No stored attention patterns: run `heads` on this model to see them",
    )
    return (
        selected,
        detail.title,
        pattern,
        detail.pattern_spec,
        scores_table(detail.scores),
        sae_list(detail.sae_features),
        *positions,
        head_figures(detail.figures),
    )


# The selected head's outline is an HTML box laid over the drawn heatmap, placed in the
# browser: any heatmap redraw (a new or patched figure, even Plotly.relayout of a shape)
# re-rendered 80 × 64 cells and swallowed clicks that landed meanwhile.
outline_head = ClientsideCallback(
    HIGHLIGHT_JS, (Input(ids.HEADS_SELECTED, "data"),), prevent_initial_call=True
)


@callback(
    Output(ids.HEADS_POSITION_BOX, "children"),
    Output(POSITION_SPEC, "spec"),
    Input(ids.HEADS_POSITION_METRIC, "value"),
    State(ids.HEADS_SELECTED, "data"),
    State(ids.HEADS_RUN, "value"),
    prevent_initial_call=True,  # the page comes with the first choice's figure
)
def show_positions(
    ctx: WebContext, choice: str | None, selected: list[int] | None, run_id: int | None
) -> tuple:
    view = heads_view.position_view(ctx, choice, selected, run_id)
    return position_content(view), view.spec
