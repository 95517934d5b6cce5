"""Route: /circuits?run=ID — discovered circuits side by side."""

from app.components.analysis_pages import circuits_layout
from app.services import circuits
from app.services.context import WebContext


def build(ctx: WebContext, query: dict[str, str]) -> object:
    options, chosen = circuits.picker(ctx.store, query.get("run"))
    n_edges, max_score = circuits.score_range(ctx.store, chosen)
    return circuits_layout(options, chosen, n_edges, max_score)
