"""Route: /overlap?runs=ID,ID[,ID…] — circuits of one model across tasks, overlapped."""

from app.components.common import message, page
from app.components.overlap import overlap_layout
from app.services import overlap
from app.services.context import WebContext


def build(ctx: WebContext, query: dict[str, str]) -> object:
    try:
        chosen = overlap.parse_run_ids(query.get("runs")) if query.get("runs") else None
    except overlap.OverlapError as exc:
        return page("Circuit overlap", message(str(exc), "warn"))
    options = overlap.circuit_run_options(ctx.store)
    return overlap_layout(
        options, chosen if chosen is not None else overlap.default_runs(ctx.store)
    )
