"""The Explore page's layout: a text box, a model and a submit; then every head of the run.

The finished run's panels (``result_layout``): a grid of every head's pattern thumbnail
(hover focuses a head, a click locks it, a second click unlocks: ``assets/explore.js``), the
focused head's pattern, the token text shaded by the focused head's attention from / to the
clicked token, an overlay of several heads' attention at that token (one colour per head),
the per-head scores on this text, and the DLA / logit-lens panels.
"""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from app import ids
from app.components.common import card, data_table, empty_figure, export_menu, graph, message, page
from app.export.errors import ExportError
from app.figures.explore import token_display
from app.services import explore
from app.services.explore import ExploreView
from app.services.figures import page_figure
from storage.errors import StoreError

POLL_MS = 250
HEADS_FIGURE = "explore-heads"  # export menu names, as `headlab export figure --kind`
PATTERN_FIGURE = "pattern"
OVERLAY_FIGURE = "explore-overlay"
DLA_FIGURE = "heatmap"
LENS_FIGURE = "explore-lens"
SHADE_RGB = "33, 113, 181"  # the Blues scale's strong blue


def explore_layout(
    models: list[str],
    *,
    prompt_sets: list[str] | None = None,
    status: str | None = None,
    model: str | None = None,
    text: str = "",
    next_token: str | None = None,
    run: int | None = None,
    result: Any = None,
    waiting: bool = False,
) -> html.Div:
    form = html.Div(
        [
            dcc.Textarea(
                id=ids.EXPLORE_TEXT,
                value=text,
                placeholder="Type or paste any text, e.g. The cat sat on the mat. The cat sat",
                className="input explore-text",
            ),
            html.Div(
                [
                    html.Label("Model", className="field-label"),
                    dcc.Dropdown(
                        id=ids.EXPLORE_MODEL,
                        options=[{"label": m, "value": m} for m in models],
                        value=model or (models[0] if models else None),
                        clearable=False,
                        placeholder="register a model on the Models page",
                        className="grow",
                    ),
                    html.Label("Next token (optional)", className="field-label"),
                    dcc.Input(
                        id=ids.EXPLORE_NEXT,
                        value=next_token or "",
                        placeholder="e.g. ␣mat",
                        className="input explore-next",
                        debounce=False,
                    ),
                    html.Button("Explore", id=ids.EXPLORE_SUBMIT, className="btn"),
                ],
                className="toolbar",
            ),
            html.Div(
                [
                    html.Label("or the prompt of a set", className="field-label"),
                    dcc.Dropdown(
                        id=ids.EXPLORE_SET,
                        options=[{"label": n, "value": n} for n in prompt_sets or []],
                        placeholder="prompt set",
                        className="grow",
                    ),
                    html.Label("prompt #", className="field-label"),
                    dcc.Input(
                        id=ids.EXPLORE_SET_INDEX,
                        type="number",
                        min=0,
                        step=1,
                        value=0,
                        className="input explore-next",
                    ),  # fmt: skip
                ],
                className="toolbar compact",
            ),
        ]
    )
    return page(
        "Explore",
        card(None, form),
        message(status, "warn" if status else "info", id=ids.EXPLORE_STATUS),
        dcc.Store(id=ids.EXPLORE_RUN, data={"run": run} if run is not None else None),
        dcc.Interval(id=ids.EXPLORE_POLL, interval=POLL_MS, disabled=not waiting),
        html.Div(result, id=ids.EXPLORE_RESULT),
        subtitle="Any text, every head at once: one forward of the model, then each head's "
        "attention, its scores on this text and its direct logit attribution.",
    )


def thumbnail_grid(found: ExploreView, thumbs: list[list[str]]) -> html.Div:
    px = max(28, min(88, 960 // max(found.n_heads, 1)))
    cells: list[Any] = [html.Div("", className="explore-corner")]
    cells += [html.Div(f"H{h}", className="explore-axis") for h in range(found.n_heads)]
    for layer in range(found.n_layers):
        cells.append(html.Div(f"L{layer}", className="explore-axis"))
        for head in range(found.n_heads):
            cells.append(
                html.Div(
                    html.Img(src=thumbs[layer][head], alt=f"head {layer}.{head}",
                             style={"width": f"{px}px", "height": f"{px}px"}),
                    className="explore-thumb",
                    title=f"head {layer}.{head}",
                    tabIndex="0",  # keyboard: Tab focuses a head, Enter or Space locks it
                    **{"data-layer": str(layer), "data-head": str(head)},  # type: ignore[arg-type]
                )
            )  # fmt: skip
    return html.Div(
        cells,
        id=ids.EXPLORE_THUMBS,
        className="explore-grid",
        style={"gridTemplateColumns": f"max-content repeat({found.n_heads}, {px + 6}px)"},
    )


def token_spans(tokens: list[str], shading: list[float] | None, selected: int) -> list[html.Span]:
    """The text as one span per token; ``shading`` (0..1 per token) colours its background."""
    top = max(shading or [0.0]) or 1.0
    spans = []
    for i, token in enumerate(tokens):
        value = shading[i] if shading is not None else 0.0
        alpha = 0.85 * value / top
        spans.append(
            html.Span(
                token_display(token),
                className="explore-token" + (" selected" if i == selected else ""),
                title=f"token {i}: attention {value:.3f}",
                style={"backgroundColor": f"rgba({SHADE_RGB}, {alpha:.3f})",
                       "color": "white" if alpha > 0.5 else None},
                **{"data-pos": str(i)},  # type: ignore[arg-type]
            )
        )  # fmt: skip
    return spans


def _target_options(found: ExploreView) -> list[dict[str, Any]]:
    out = []
    for role in ("next", "top"):
        if role in found.targets:
            what = "next token" if role == "next" else "top next token"
            out.append({"label": f" {what} {token_display(found.targets[role]['text'])!r}",
                        "value": role})  # fmt: skip
    return out


def lens_rows(found: ExploreView) -> list[dict[str, Any]]:
    names = [f"resid_pre {i}" for i in range(found.n_layers)] + ["final"]
    rows = []
    for i, name in enumerate(names):
        row: dict[str, Any] = {"read": name}
        for role, values in found.logit_lens.items():
            row[f"p({role})"] = values[i]["prob"]
            row[f"rank({role})"] = values[i]["rank"]
        row["lens top tokens"] = ", ".join(
            f"{token_display(t)!r} {p:.2f}" for t, p in found.lens_top[i]
        )
        rows.append(row)
    return rows


def result_layout(
    found: ExploreView,
    thumbs: list[list[str]],
    figures: dict[str, tuple[Any, dict[str, Any] | None]],
    overlay_heads: list[str],
) -> html.Div:
    """``figures``: name → (plotly JSON, spec) of the panels drawn with the page."""
    last = len(found.tokens) - 1
    head_options = [f"{la}.{h}" for la in range(found.n_layers) for h in range(found.n_heads)]
    targets = _target_options(found)
    pattern, pattern_spec = figures["pattern"]
    overlay, overlay_spec = figures["overlay"]
    dla, dla_spec = figures["dla"]
    lens, lens_spec = figures["lens"]
    return html.Div(
        [
            dcc.Store(id=ids.EXPLORE_SHOWN, data=found.run),
            dcc.Store(id=ids.EXPLORE_FOCUS, data={"layer": 0, "head": 0, "locked": False}),
            dcc.Store(id=ids.EXPLORE_TOKEN, data={"pos": last}),
            card(
                f"Every head ({found.n_layers} layers × {found.n_heads} heads, "
                f"{len(found.tokens)} tokens)",
                html.P(
                    "Hover a head to focus it; click to lock it, click again to unlock.",
                    className="muted",
                ),  # fmt: skip
                thumbnail_grid(found, thumbs),
                extra=export_menu(HEADS_FIGURE, {"kind": "explore_heads", "run": found.run}),
            ),
            html.Div(
                [
                    html.Div(
                        [
                            html.Div(
                                [
                                    html.H2("Head 0.0", id=ids.EXPLORE_FOCUS_TITLE),
                                    export_menu(PATTERN_FIGURE, pattern_spec),
                                ],
                                className="card-head",
                            ),
                            graph(ids.EXPLORE_PATTERN, pattern, height=440),
                        ],
                        className="card explore-focus",
                    ),  # fmt: skip
                    card(
                        "Tokens",
                        dcc.RadioItems(
                            id=ids.EXPLORE_DIRECTION,
                            value="from",
                            inline=True,
                            options=[
                                {"label": " attention from the clicked token", "value": "from"},
                                {"label": " attention to it", "value": "to"},
                            ],
                            className="radio",
                        ),
                        html.P(
                            "Click a token; shading is the focused head's attention.",
                            className="muted",
                        ),  # fmt: skip
                        html.Div(
                            token_spans(found.tokens, None, last),
                            id=ids.EXPLORE_TOKENS,
                            className="explore-tokens",
                        ),  # fmt: skip
                    ),
                ],
                className="two-col even",
            ),
            card(
                "Heads overlaid",
                dcc.Dropdown(
                    id=ids.EXPLORE_OVERLAY_HEADS,
                    options=head_options,
                    value=overlay_heads,
                    multi=True,
                    placeholder="heads to overlay",
                ),
                graph(ids.EXPLORE_OVERLAY, overlay, height=360),
                extra=export_menu(OVERLAY_FIGURE, overlay_spec),
            ),
            card(
                "Scores on this text",
                data_table("explore-scores-table", found.score_rows(), page_size=16),
                html.P(
                    "prev-token, duplicate-token and induction scores as "
                    "transformer_lens.head_detector.detect_head on this text (the last two only "
                    "when a token repeats); bos_mass: attention on the first token; self_mass: "
                    "on the query itself; dla_*: direct logit attribution at the last token.",
                    className="muted",
                ),
                class_name="table-wrap",
            ),
            html.Div(
                [
                    card(
                        "Direct logit attribution",
                        dcc.RadioItems(
                            id=ids.EXPLORE_DLA_TARGET,
                            value=targets[0]["value"],
                            options=targets,
                            inline=True,
                            className="radio",
                        ),
                        graph(ids.EXPLORE_DLA, dla, height=380),
                        extra=export_menu(DLA_FIGURE, dla_spec),
                    ),  # fmt: skip
                    card(
                        "Logit lens",
                        graph(ids.EXPLORE_LENS, lens, height=380),
                        data_table(ids.EXPLORE_LENS_TABLE, lens_rows(found), page_size=12),
                        extra=export_menu(LENS_FIGURE, lens_spec),
                    ),
                ],
                className="two-col even",
            ),
        ]
    )


def figure_and_spec(ctx: Any, spec: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    try:
        return page_figure(ctx.reader, spec), spec
    except (ExportError, StoreError, ValueError) as exc:
        return empty_figure(str(exc)), None


def pattern_spec(run: int, layer: int, head: int) -> dict[str, Any]:
    return {"kind": "pattern", "run": run, "layer": layer, "head": head, "prompt": 0}


def overlay_spec(run: int, heads: list[str], query: int, direction: str) -> dict[str, Any]:
    return {"kind": "explore_overlay", "run": run, "heads": list(heads), "query": query,
            "direction": direction}  # fmt: skip


def dla_spec(run: int, role: str) -> dict[str, Any]:
    return {"kind": "head_heatmap", "run": run, "metric": f"dla_{role}"}


def lens_spec(run: int) -> dict[str, Any]:
    return {"kind": "explore_lens", "run": run}


def result_panels(ctx: Any, run_id: int) -> Any:
    """The finished run's panels. The thumbnails and the table come with them; each figure is
    drawn by its own callback once the panels are in the page (``app.callbacks.explore``), so
    the grid of every head shows first."""
    found = explore.view(ctx.reader, run_id)
    heads = explore.default_overlay_heads(found)
    last = len(found.tokens) - 1
    role = "next" if "next" in found.targets else "top"
    blank = empty_figure()
    figures: dict[str, tuple[Any, dict[str, Any] | None]] = {
        "pattern": (blank, pattern_spec(run_id, 0, 0)),
        "overlay": (blank, overlay_spec(run_id, heads, last, "from")),
        "dla": (blank, dla_spec(run_id, role)),
        "lens": (blank, lens_spec(run_id)),
    }
    return result_layout(found, explore.thumbnails(ctx.reader, run_id), figures, heads)
