"""Route: /sae?run=ID&feature=N — features of a trained attention-output SAE."""

from app.components.analysis_pages import sae_layout
from app.services import sae_view
from app.services.context import WebContext


def build(ctx: WebContext, query: dict[str, str]) -> object:
    state = sae_view.initial(ctx, query.get("run"))
    return sae_layout(
        state["options"],
        state["run"],
        state["features"],
        state["training"],
        state["training_spec"],
        state["note"],
    )
