"""Route: /compare?a=ID&b=ID — two runs of the same kind."""

from app.components.analysis_pages import compare_layout
from app.services import compare
from app.services.context import WebContext


def build(ctx: WebContext, query: dict[str, str]) -> object:
    a, b = compare.default_pair(ctx, query.get("a"), query.get("b"))
    metrics, _ = compare.common_metrics(ctx, a, b)
    metric = query.get("metric") if query.get("metric") in metrics else None
    return compare_layout(
        compare.run_options(ctx), a, b, metrics, metric or (metrics[0] if metrics else None)
    )
