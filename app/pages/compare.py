"""Route: /compare?a=ID&b=ID[&metric=M] — two runs of one kind (one model, or two models of one
shape: checkpoints); /compare?sweep=ID — a whole sweep."""

from app.components.analysis_pages import compare_layout, compare_sweep_layout
from app.components.common import message, page
from app.components.overlap import with_circuit_overlap_link
from app.services import compare
from app.services.context import WebContext
from storage.errors import NotFound


def build(ctx: WebContext, query: dict[str, str]) -> object:
    if query.get("sweep"):
        return _sweep(ctx, query["sweep"], query.get("metric"))
    a, b = compare.default_pair(ctx, query.get("a"), query.get("b"))
    metrics, _ = compare.common_metrics(ctx, a, b)
    metric = query.get("metric") if query.get("metric") in metrics else None
    layout = compare_layout(
        compare.run_options(ctx),
        a,
        b,
        metrics,
        metric or compare.first_metric(ctx, a, metrics),
        compare.prompt_options(ctx, a, b),
    )
    return with_circuit_overlap_link(ctx, layout, a, b)


def _sweep(ctx: WebContext, sweep_ref: str, metric: str | None) -> object:
    try:
        sweep, runs, metrics = compare.sweep_view(
            ctx, int(sweep_ref) if sweep_ref.isdigit() else -1
        )
    except NotFound:
        return page("Compare", message(f"No sweep #{sweep_ref}; the Runs page lists the sweeps."))
    chosen = metric if metric in metrics else (metrics[0] if metrics else None)
    return compare_sweep_layout(sweep, compare.sweep_rows(sweep, runs), metrics, chosen)
