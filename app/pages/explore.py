"""Route: /explore[?run=ID | ?model=SPEC] — any text, every head at once (an ``explore``
run's panels; ``model`` preselects a registered model)."""

from app.components.common import message, page
from app.components.explore import explore_layout, result_panels
from app.export.errors import ExportError
from app.services import explore
from app.services.context import WebContext
from storage.errors import StoreError
from storage.records import RunStatus


def build(ctx: WebContext, query: dict[str, str]) -> object:
    models = explore.model_options(ctx.store)
    sets = [p.name for p in ctx.store.list_prompt_sets()]
    wanted = query.get("run", "")
    if not wanted:
        model = query.get("model")
        return explore_layout(models, prompt_sets=sets, model=model if model in models else None)
    if not wanted.isdigit():
        return page("Explore", message(f"run={wanted!r} is not a run id; write /explore?run=ID",
                                       "warn"))  # fmt: skip
    try:
        run = ctx.store.get_run(int(wanted))
    except StoreError as exc:
        return page("Explore", message(str(exc), "warn"))
    if run.kind != explore.KIND:
        return page(
            "Explore",
            message(
                f"run {run.id} is a {run.kind} run, not an explore run; explore a text below",
                "warn",
            ),
            explore_layout(models),
        )
    config = run.config
    text, next_token = str(config.get("text") or ""), config.get("next_token")

    def shown(result: object = None, waiting: bool = False, status: str | None = None) -> object:
        return explore_layout(models, prompt_sets=sets, model=run.model_spec, text=text,
                              next_token=next_token, run=run.id, result=result, waiting=waiting,
                              status=status)  # fmt: skip

    if run.status != RunStatus.FINISHED:
        failed = None
        if run.status.is_terminal:
            failed = f"Run #{run.id} {run.status.value}: {run.error or run.status.value}"
        return shown(waiting=not run.status.is_terminal, status=failed)
    try:
        panels = result_panels(ctx, run.id)
    except (ExportError, StoreError, ValueError) as exc:
        panels = message(str(exc), "warn")
    return shown(panels)
