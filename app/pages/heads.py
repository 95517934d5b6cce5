"""Route: /heads?run=ID&metric=NAME&head=aL.hH — the layer × head browser (``head`` selects
that head once the page is drawn, as a click on its cell does: ``assets/heads_url.js``)."""

from app.components.heads import heads_layout
from app.services import heads_view
from app.services.context import WebContext


def build(ctx: WebContext, query: dict[str, str]) -> object:
    run = int(query["run"]) if query.get("run", "").isdigit() else None
    return heads_layout(heads_view.initial(ctx, run, query.get("metric")))
