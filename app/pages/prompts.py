"""Route: /prompts — stored prompt sets, import a prompt file."""

from app.components.catalog import prompts_layout
from app.pages import register_route
from app.services import catalog
from app.services.context import WebContext


def build(ctx: WebContext, query: dict[str, str]) -> object:
    rows = catalog.prompt_set_rows(ctx.store)
    options = [{"label": f"{r['name']} ({r['pairs']} pairs)", "value": r["id"]} for r in rows]
    return prompts_layout(rows, options)


register_route("/prompts", "Prompt sets", build)
