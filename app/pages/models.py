"""Route: /models — stored models, add a model spec."""

from app.components.catalog import models_layout
from app.services import catalog
from app.services.context import WebContext


def build(ctx: WebContext, query: dict[str, str]) -> object:
    return models_layout(catalog.model_rows(ctx.store))
