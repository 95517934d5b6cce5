"""Route: /launch?kind=NAME — forms for every run kind."""

from analysis.configs import run_kinds
from analysis.configs.catalog import CATALOG_KINDS
from app.components.launch import form, launch_layout
from app.services import launch
from app.services.context import WebContext


def build(ctx: WebContext, query: dict[str, str]) -> object:
    # Catalog runs (import / generate prompts, add a model) have their own forms on the
    # Prompt sets and Models pages.
    kinds = sorted(k for k in run_kinds() if k not in CATALOG_KINDS)
    kind = query.get("kind") if query.get("kind") in kinds else (kinds[0] if kinds else None)
    models, sets = launch.choices(ctx.store)
    body = form(launch.form_fields(kind), models, sets) if kind else "No run kinds are installed."
    return launch_layout(kinds, kind, body)
