"""Route: / — what is in the store, and the heads of the newest run."""

from app.components.catalog import home_layout
from app.services import catalog
from app.services.context import WebContext


def build(ctx: WebContext, query: dict[str, str]) -> object:
    data = catalog.home(ctx)
    return home_layout(data["counts"], data["recent"], data["heatmap"], data["href"], data["title"])
