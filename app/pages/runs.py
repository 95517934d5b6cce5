"""Route: /runs — the run list."""

from analysis.configs import run_kinds
from app.components.runs import runs_layout
from app.services.context import WebContext


def build(ctx: WebContext, query: dict[str, str]) -> object:
    return runs_layout(sorted(run_kinds()), query.get("kind"), query.get("status"))
