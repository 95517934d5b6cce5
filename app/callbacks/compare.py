"""Compare page: two runs + a shared metric → the heads that moved most (table and chart), the
selected mover's attention in both runs, side-by-side and difference heatmaps."""

from __future__ import annotations

from dash import Input, Output, State, html

from app import ids
from app.callbacks.wiring import ClientsideCallback, callback
from app.components.common import empty_figure
from app.services import compare
from app.services.context import WebContext
from app.services.figures import page_figure
from storage.errors import StoreError

SWEEP_SPEC = ids.export_id("compare-sweep")
SIDE_SPEC = ids.export_id("compare-side")
DIFF_SPEC = ids.export_id("compare-diff")
MOVERS_SPEC = ids.export_id("compare-movers")
PATTERN_SPECS = (ids.export_id("compare-pattern-a"), ids.export_id("compare-pattern-b"))
TOP = 10  # movers the page lists


@callback(
    Output(ids.COMPARE_METRIC, "options"),
    Output(ids.COMPARE_METRIC, "value"),
    Input(ids.COMPARE_RUN_A, "value"),
    Input(ids.COMPARE_RUN_B, "value"),
    State(ids.COMPARE_METRIC, "value"),
    prevent_initial_call=True,
)
def pick_runs(ctx: WebContext, a: int | None, b: int | None, metric: str | None) -> tuple:
    metrics, _ = compare.common_metrics(ctx, a, b)
    return metrics, metric if metric in metrics else compare.first_metric(ctx, a, metrics)


@callback(
    Output(ids.COMPARE_PROMPT, "options"),
    Output(ids.COMPARE_PROMPT, "value"),
    Input(ids.COMPARE_RUN_A, "value"),
    Input(ids.COMPARE_RUN_B, "value"),
    State(ids.COMPARE_PROMPT, "value"),
    prevent_initial_call=True,
)
def pick_prompts(ctx: WebContext, a: int | None, b: int | None, prompt: int | None) -> tuple:
    """The prompts both runs store attention patterns of; the chosen one kept if it still is."""
    options = compare.prompt_options(ctx, a, b)
    values = [option["value"] for option in options]
    return options, prompt if prompt in values else (values[0] if values else None)


@callback(
    Output(ids.COMPARE_SIDE, "figure"),
    Output(SIDE_SPEC, "spec"),
    Output(ids.COMPARE_DIFF, "figure"),
    Output(DIFF_SPEC, "spec"),
    Output(ids.COMPARE_MOVERS_CHART, "figure"),
    Output(MOVERS_SPEC, "spec"),
    Output(ids.COMPARE_MOVERS, "data"),
    Output(ids.COMPARE_MESSAGE, "children"),
    Output(ids.COMPARE_MESSAGE, "className"),
    Input(ids.COMPARE_METRIC, "value"),
    State(ids.COMPARE_RUN_A, "value"),
    State(ids.COMPARE_RUN_B, "value"),
)
def show(ctx: WebContext, metric: str | None, a: int | None, b: int | None) -> tuple:
    metrics, note = compare.common_metrics(ctx, a, b)
    css = "message empty" if not note else "message info" if metrics else "message warn"
    if not metric or metric not in metrics or a is None or b is None:
        blank = empty_figure(note or "Pick two runs and a metric")
        return blank, None, blank, None, blank, None, [], note, css
    out: list = []
    for kind in ("compare_side", "compare_diff"):
        spec = {"kind": kind, "a": int(a), "b": int(b), "metric": metric}
        try:
            out += [page_figure(ctx.reader, spec), spec]
        except (StoreError, ValueError) as exc:
            out += [empty_figure(str(exc)), None]
    try:
        rows = compare.mover_rows(compare.movers(ctx.reader, int(a), int(b), metric, TOP))
        spec = compare.movers_spec(int(a), int(b), metric, TOP)
        out += [page_figure(ctx.reader, spec), spec, rows]
    except (StoreError, ValueError) as exc:
        out += [empty_figure(str(exc)), None, []]
    return (*out, note, css)


@callback(
    Output(ids.COMPARE_MOVER_TITLE, "children"),
    Output(ids.COMPARE_PATTERN_A, "figure"),
    Output(PATTERN_SPECS[0], "spec"),
    Output(ids.COMPARE_PATTERN_B, "figure"),
    Output(PATTERN_SPECS[1], "spec"),
    Output(ids.COMPARE_MOVERS, "style_data_conditional"),
    Input(ids.COMPARE_MOVERS, "active_cell"),
    Input(ids.COMPARE_MOVERS, "data"),
    Input(ids.COMPARE_PROMPT, "value"),
    State(ids.COMPARE_RUN_A, "value"),
    State(ids.COMPARE_RUN_B, "value"),
)
def select_mover(
    ctx: WebContext,
    cell: dict | None,
    rows: list[dict] | None,
    prompt: int | None,
    a: int | None,
    b: int | None,
) -> tuple:
    """The clicked mover (else the top one): its attention pattern in run A and in run B."""
    known = [row["id"] for row in rows or []]
    chosen = cell.get("row_id") if cell else None
    chosen = chosen if chosen in known else (known[0] if known else None)
    if chosen is None or a is None or b is None:
        blank = empty_figure("No mover to show")
        return "Select a mover", blank, None, blank, None, []
    layer, head = (int(x) for x in str(chosen).split("."))
    out: list = []
    try:
        specs = compare.mover_pattern_specs(ctx.reader, int(a), int(b), (layer, head), prompt or 0)
    except StoreError as exc:
        specs = [str(exc), str(exc)]
    for spec in specs:
        if isinstance(spec, str):
            out += [empty_figure(spec), None]
            continue
        try:
            out += [page_figure(ctx.reader, spec), spec]
        except (StoreError, ValueError) as exc:
            out += [empty_figure(str(exc)), None]
    highlight = [{"if": {"filter_query": f'{{id}} = "{chosen}"'}, "backgroundColor": "#e8f0fb"}]
    title = [html.Span(f"Head {chosen}", **{"data-head": chosen}), ": attention in A and in B"]
    return (title, *out, highlight)


# The selection (a click or the table's arrow keys) names the head in the title's data-head;
# the Δ chart outlines that head's bar and shows its hover label, and the pattern graphs drop a
# hover label left from the head before (plotly keeps a label until the mouse moves).
FOLLOW_JS = """
function (title) {
    let head = null;
    (Array.isArray(title) ? title : [title]).forEach(part => {
        const props = part && part.props;
        if (props && props['data-head'] != null) { head = String(props['data-head']); }
    });
    window._compareMover = head;
    if (!window.Plotly) { return; }
    const mark = gd => {
        if (!gd || !gd.data || !gd.data.length || !gd._fullLayout) { return; }
        const labels = Array.from(gd.data[0].y || []);
        const index = labels.indexOf('head ' + window._compareMover);
        const widths = labels.map((y, i) => i === index ? 2.5 : 0);
        const line = (gd.data[0].marker || {}).line || {};
        const hover = () => {
            if (index >= 0) { Plotly.Fx.hover(gd, [{curveNumber: 0, pointNumber: index}]); }
        };
        if (JSON.stringify(Array.from(line.width || [])) === JSON.stringify(widths)) {
            hover();
        } else {
            const style = {'marker.line.width': [widths], 'marker.line.color': '#111111'};
            Plotly.restyle(gd, style, [0]).then(hover);
        }
    };
    ['PATTERN_A', 'PATTERN_B'].forEach(id => {
        const gd = document.querySelector('#' + id + ' .js-plotly-plot');
        if (gd && gd._fullLayout) { Plotly.Fx.unhover(gd); }
    });
    const chart = document.querySelector('#CHART .js-plotly-plot');
    if (chart && chart.on && !chart._followsMover) {
        chart._followsMover = true;
        chart.on('plotly_afterplot', () => mark(chart));  // a new chart: mark it again
    }
    mark(chart);
}
"""
FOLLOW_JS = (
    FOLLOW_JS.replace("PATTERN_A", ids.COMPARE_PATTERN_A)
    .replace("PATTERN_B", ids.COMPARE_PATTERN_B)
    .replace("CHART", ids.COMPARE_MOVERS_CHART)
)
follow_mover = ClientsideCallback(
    FOLLOW_JS, (Input(ids.COMPARE_MOVER_TITLE, "children"),), prevent_initial_call=True
)


@callback(
    Output(ids.COMPARE_SWEEP_GRID, "figure"),
    Output(SWEEP_SPEC, "spec"),
    Input(ids.COMPARE_SWEEP_METRIC, "value"),
    State(ids.COMPARE_SWEEP_ID, "data"),
)
def show_sweep(ctx: WebContext, metric: str | None, sweep_id: int | None) -> tuple:
    if sweep_id is None:
        return empty_figure("No sweep"), None
    try:
        runs = ctx.store.sweep_runs(int(sweep_id))  # the page listed the metrics already
        spec = compare.sweep_figure_spec(int(sweep_id), runs, metric)
        if spec is None:
            return empty_figure("No finished run of the sweep stores a per-head metric yet"), None
        return page_figure(ctx.reader, spec), spec
    except (StoreError, ValueError) as exc:
        return empty_figure(str(exc)), None
