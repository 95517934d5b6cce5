"""Route: /prompts — stored prompt sets, import a prompt file, generate a task set."""

from analysis.configs.catalog import TASKS
from app.components.catalog import prompts_layout
from app.services import catalog
from app.services.context import WebContext


def build(ctx: WebContext, query: dict[str, str]) -> object:
    rows = catalog.prompt_set_rows(ctx.store)
    specs = catalog.model_specs(ctx.store)
    return prompts_layout(rows, catalog.set_options(rows), specs, list(TASKS))
