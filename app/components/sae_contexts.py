"""The SAEs page's top-activating contexts as text: every token shaded by its activation
relative to its context's peak (``app.figures.sae.context_shading``, the export figure's
shading too); the peak token bold and outlined, with its activation beside it."""

from __future__ import annotations

from typing import Any

from dash import html

from app.figures.sae import context_shading

SHADE_RGB = "214, 96, 77"
LEGEND = (
    "Shade: a token's activation ÷ its context's peak. The outlined bold token is the peak "
    "(its activation beside it); hover a token for its value."
)


def context_row(index: int, context: dict[str, Any]) -> html.Div:
    """One context: its tokens as shaded spans, the peak marked and valued."""
    shade, peak_index, peak = context_shading(context)
    spans: list[Any] = []
    for i, (token, act, rel) in enumerate(
        zip(context.get("tokens", []), context.get("acts", []), shade, strict=True)
    ):
        style = {"backgroundColor": f"rgba({SHADE_RGB}, {rel:.2f})"}
        if rel > 0.6:
            style["color"] = "#ffffff"
        title = f"{float(act):.3f} ({rel:.0%} of this context's peak)"
        if i == peak_index:
            spans.append(html.Span(str(token), title=title, className="tok peak", style=style))
            spans.append(html.Span(f"{peak:.3g}", className="peak-value", title="peak activation"))
        else:
            spans.append(html.Span(str(token), title=title, className="tok", style=style))
    return html.Div([html.Span(f"#{index}", className="ctx-max"), *spans], className="ctx")


def highlighted_contexts(contexts: list[dict[str, Any]]) -> Any:
    """The contexts of a feature, a line saying how they are shaded first."""
    if not contexts:
        return html.P("No stored contexts for this feature.", className="muted")
    rows = [context_row(i, c) for i, c in enumerate(contexts)]
    return [html.P(LEGEND, className="hint"), *rows]
