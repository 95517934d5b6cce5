"""What the Heads page shows, composed from the store: run picker, metric grid, head detail.

A ``taxonomy`` run adds figures: the selected head's (retrieval map, span profile, dormancy) in
the head detail and the run's (KV-cache curve, head similarity, massive activations) below the
grid; an ``importance`` run its pruning curves and importance scatter below the grid. A
``lens`` run adds the selected head's OV lens and its lenses' top tokens on the chosen prompt
(whose options are the lens run's own prompts). The metric picker lists aggregate per-head
metrics only (``ResultsReader.metrics``): per-prompt rows such as ``dormant`` have no heatmap
of their own.

Head selection is a ``[layer, head]`` pair; arrow keys move it within the grid (up/down change
the layer, left/right the head), clamped at the edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.export.errors import ExportError
from app.services import runs as run_service
from app.services import sae
from app.services.context import WebContext
from app.services.figures import page_figure
from storage.errors import NotFound, StoreError
from storage.records import RunRecord, RunStatus

PREFERRED_METRICS = ("induction_score", "prev_token_score", "dla", "patch_z", "ablate_mean")
# a run kind's own first metrics, tried before PREFERRED_METRICS
KIND_PREFERRED_METRICS = {
    "taxonomy": ("retrieval_score", "streaming_kl"),
    "lens": ("ov_copy_score", "lens_kl"),
    "importance": ("grad_importance", "ablation_importance"),
    "path-patch": ("path_logits", "path_qkv", "path_k", "path_q", "path_v"),
}
# figures of a ``taxonomy`` run: per head (the head detail) and per run (below the grid)
TAXONOMY_HEAD_FIGURES = (
    ("retrieval_map", "Retrieval by context and depth"),
    ("span_profile", "Attention span by position"),
    ("dormancy", "Dormancy by prompt"),
)
TAXONOMY_RUN_FIGURES = (
    ("kv_curve", "KV-cache budget curve"),
    ("head_similarity", "Head similarity"),
    ("massive_activations", "Massive activations"),
)
MOVES = {"ArrowUp": (-1, 0), "ArrowDown": (1, 0), "ArrowLeft": (0, -1), "ArrowRight": (0, 1)}


NO_POSITIONS = "No per-position results to show"


@dataclass
class PositionView:
    """The per-position heatmap (plotly JSON) and its spec, or a message saying why none."""

    figure: Any = None
    spec: dict[str, Any] | None = None
    message: str = NO_POSITIONS


@dataclass
class FigureView:
    """One figure of the page (plotly JSON) and its spec, or the message saying why none."""

    name: str  # the figure's kind, also its export menu's name
    title: str
    spec: dict[str, Any]
    figure: Any = None
    message: str = ""


def figure_view(ctx: WebContext, name: str, title: str, spec: dict[str, Any]) -> FigureView:
    """The figure of ``spec``; a figure that cannot be drawn (an unknown kind, missing data, a
    store error) becomes its message, never a traceback."""
    try:
        return FigureView(name, title, spec, page_figure(ctx.reader, spec))
    except (ExportError, StoreError, ValueError) as exc:
        return FigureView(name, title, spec, message=str(exc) or type(exc).__name__)


def taxonomy_head_figures(
    ctx: WebContext, run: RunRecord, layer: int, head: int
) -> list[FigureView]:
    """The selected head's figures of a ``taxonomy`` run (the retrieval map only when the run
    scored retrieval, i.e. ran on a needle set); none for other kinds."""
    if run.kind != "taxonomy":
        return []
    metrics = ctx.reader.metrics(run.id)
    out = []
    for name, title in TAXONOMY_HEAD_FIGURES:
        if name == "retrieval_map" and "retrieval_score" not in metrics:
            continue
        spec = {"kind": name, "run": run.id, "layer": layer, "head": head}
        out.append(figure_view(ctx, name, title, spec))
    return out


# figures of an ``importance`` run (below the grid)
IMPORTANCE_RUN_FIGURES = (
    ("pruning_curve", "Pruning curves"),
    ("importance_scatter", "Gradient vs ablation importance"),
)
PATH_RUN_FIGURES = (("path_grid", "Path patching: sender × receiver"),)
RUN_FIGURES = {
    "taxonomy": TAXONOMY_RUN_FIGURES,
    "importance": IMPORTANCE_RUN_FIGURES,
    "path-patch": PATH_RUN_FIGURES,
}


def taxonomy_run_figures(ctx: WebContext, run: RunRecord) -> list[FigureView]:
    """The run-level figures of a ``taxonomy`` or ``importance`` run (``RUN_FIGURES``); none
    for other kinds."""
    return [
        figure_view(ctx, name, title, {"kind": name, "run": run.id})
        for name, title in RUN_FIGURES.get(run.kind, ())
    ]


# figures of a ``lens`` run's selected head (the trained lens only when the run trained one)
LENS_HEAD_FIGURES = (
    ("ov_lens", "OV lens: promoted and suppressed tokens"),
    ("logit_lens_tokens", "Head logit lens by position"),
    ("trained_lens_tokens", "Trained lens by position"),
)


def lens_head_figures(
    ctx: WebContext, run: RunRecord, layer: int, head: int, prompt: int
) -> list[FigureView]:
    """The selected head's figures of a ``lens`` run on the chosen prompt; none for others."""
    if run.kind != "lens":
        return []
    out = []
    for name, title in LENS_HEAD_FIGURES:
        if name == "trained_lens_tokens" and not run.config.get("train"):
            continue
        spec = {"kind": name, "run": run.id, "layer": layer, "head": head, "prompt": prompt}
        out.append(figure_view(ctx, name, title, spec))
    return out


@dataclass
class HeadsInitial:
    run_options: list[dict[str, Any]]
    run_id: int | None
    metric_options: list[str] = field(default_factory=list)
    metric: str | None = None
    figure: Any = None
    spec: dict[str, Any] | None = None
    prompt_options: list[dict[str, Any]] = field(default_factory=list)
    position_options: list[dict[str, Any]] = field(default_factory=list)
    position: PositionView | None = None
    run_figures: list[FigureView] = field(default_factory=list)
    message: str = ""

    @property
    def prompt(self) -> int | None:
        """The prompt shown first: the first of the options."""
        return first_value(self.prompt_options)

    @property
    def position_choice(self) -> str | None:
        """The per-position grid shown first (``"run|metric"``): the first of the options."""
        return first_value(self.position_options)


def first_value(options: list[dict[str, Any]]) -> Any:
    return options[0]["value"] if options else None


def default_metric(metrics: list[str], kind: str | None = None) -> str | None:
    for name in (*KIND_PREFERRED_METRICS.get(kind or "", ()), *PREFERRED_METRICS):
        if name in metrics:
            return name
    return metrics[0] if metrics else None


def preferred_run(ctx: WebContext) -> int | None:
    """The newest finished ``heads`` run (head-type scores are the natural first view)."""
    runs = run_service.finished_runs(ctx.store, ("heads",), limit=1)
    return runs[0].id if runs else None


RUN_OPTIONS = 60  # newest finished runs in the picker (the dropdown indexes every option)


def run_options(ctx: WebContext, current: int | None) -> list[dict[str, Any]]:
    """The newest finished runs, plus ``current`` when it is older (others: the Runs page)."""
    runs = run_service.finished_runs(ctx.store, limit=RUN_OPTIONS)
    if current is not None and all(r.id != current for r in runs):
        runs.insert(0, ctx.store.get_run(current))
    names = run_service.prompt_set_names(ctx.store)
    return [{"label": run_service.run_label(r, names), "value": r.id} for r in runs]


def prompt_options(ctx: WebContext, run: RunRecord) -> list[dict[str, Any]]:
    # a lens run's figures read its own prompts (tokens.json); others show a heads run's
    source = run if run.kind == "lens" else ctx.reader.pattern_run(run)
    if source is None:
        return []
    tokens = ctx.reader.prompt_tokens(source.id)
    return [{"label": f"{i}: {''.join(t)[:40]}", "value": i} for i, t in enumerate(tokens)]


SAME_KIND_SOURCES = 4  # runs of the shown run's kind whose per-position grids the picker lists


def position_sources(ctx: WebContext, run: RunRecord) -> list[RunRecord]:
    """``run``, the newest other finished runs of its kind on the same model and prompt set
    (a patch run with ``positions=all`` has no per-position grid of its own, but a sibling with
    ``positions=each`` does) and the newest run of every other kind there (``related_runs``,
    whose tables the head detail reads anyway): a few runs, so the reader's cache of tables is
    not flushed by a long scan."""
    siblings = [
        other
        for other in ctx.store.list_runs(kind=run.kind, status=RunStatus.FINISHED, limit=100)
        if other.id != run.id
        and other.model_spec == run.model_spec
        and other.prompt_set_id == run.prompt_set_id
    ]
    return [run, *siblings[:SAME_KIND_SOURCES], *ctx.reader.related_runs(run)]


def position_options(ctx: WebContext, run: RunRecord) -> list[dict[str, Any]]:
    out = []
    for source in position_sources(ctx, run):
        for metric in ctx.reader.position_metrics(source.id):
            out.append(
                {
                    "label": f"#{source.id} {source.kind} · {metric}",
                    "value": f"{source.id}|{metric}",
                }
            )
    return out


def no_positions_message(ctx: WebContext, run: RunRecord) -> str:
    """Why the per-position card is empty, naming the run, its model and its prompt set."""
    names = run_service.prompt_set_names(ctx.store)
    where = f"model {run.model_spec}"
    if run.prompt_set_id is not None:
        where += f" and prompt set {names.get(run.prompt_set_id, run.prompt_set_id)!r}"
    return (
        f"No per-position results in run #{run.id} or any finished run on {where}: a `patch` "
        "run with positions=each (or site resid) stores them."
    )


def position_tokens(ctx: WebContext, run_id: int, width: int) -> tuple[int, list[str]] | None:
    """x-axis labels of a ``width``-position heatmap: (prompt index, its tokens) from the run's
    ``tokens.json``, else from the heads run whose patterns the Heads page shows if it used the
    same prompt set (its prompt i is then the set's prompt i). Prompts are right-padded, so
    position p is token p of every prompt: the first prompt covering all ``width`` positions
    is chosen, else the longest. None when neither run stores tokens."""
    run = ctx.store.get_run(run_id)
    tokens = ctx.reader.prompt_tokens(run.id)
    if not tokens and run.prompt_set_id is not None:
        source = ctx.reader.pattern_run(run)
        if source is not None and source.prompt_set_id == run.prompt_set_id:
            tokens = ctx.reader.prompt_tokens(source.id)
    if not tokens:
        return None
    covering = [i for i, t in enumerate(tokens) if len(t) >= width]
    index = covering[0] if covering else max(range(len(tokens)), key=lambda i: len(tokens[i]))
    return index, tokens[index]


def parse_position_choice(choice: str) -> tuple[int, str]:
    """(run id, metric) of a per-position choice ``"run|metric"`` (``position_options``)."""
    run_id, metric = choice.split("|", 1)
    return int(run_id), metric


def position_follows_head(ctx: WebContext, choice: str | None) -> bool:
    """Whether the per-position choice (``"run|metric"``) has one grid per head."""
    if not choice:
        return False
    return ctx.reader.position_grid_has_heads(*parse_position_choice(choice))


def position_view(
    ctx: WebContext, choice: str | None, selected: list[int] | None, run_id: int | None = None
) -> PositionView:
    """The layer × position heatmap of ``choice`` (``"run|metric"``), of the selected head when
    the metric has one grid per head; no choice: why not, for the page's run ``run_id``."""
    if not choice:
        if run_id is None:
            return PositionView()
        return PositionView(message=no_positions_message(ctx, ctx.store.get_run(int(run_id))))
    run_id, metric = parse_position_choice(choice)
    spec: dict[str, Any] = {"kind": "position_heatmap", "run": run_id, "metric": metric}
    if selected and ctx.reader.position_grid_has_heads(run_id, metric):
        spec.update(layer=selected[0], head=selected[1])
    try:
        width = int(ctx.reader.position_grid(run_id, metric).frame["position"].max()) + 1
        labels = position_tokens(ctx, run_id, width)
        if labels is not None:
            spec.update(prompt=labels[0], tokens=labels[1])
        return PositionView(page_figure(ctx.reader, spec), spec)
    except (StoreError, ValueError) as exc:
        return PositionView(message=str(exc))


def heatmap_spec(run_id: int, metric: str) -> dict[str, Any]:
    return {"kind": "head_heatmap", "run": run_id, "metric": metric}


def choices(ctx: WebContext, run_id: int | None, metric: str | None) -> HeadsInitial:
    """The page's pickers for a run: run, metric, prompt and per-position options (no
    figures; ``initial`` adds them)."""
    options = run_options(ctx, run_id)
    if run_id is None:
        if not options:
            return HeadsInitial(options, None, message="No finished runs yet: launch one.")
        run_id = preferred_run(ctx) or int(options[0]["value"])
    run = ctx.store.get_run(run_id)
    metrics = ctx.reader.metrics(run_id)
    metric = metric if metric in metrics else default_metric(metrics, run.kind)
    state = HeadsInitial(options, run_id, metrics, metric)
    state.prompt_options = prompt_options(ctx, run)
    state.position_options = position_options(ctx, run)
    if run.status is not RunStatus.FINISHED:
        state.message = unfinished_message(run)
    elif metric is None:
        state.message = f"Run #{run_id} ({run.kind}) stores no per-head metrics."
    return state


def unfinished_message(run: RunRecord) -> str:
    """What a page of a run that has not finished says instead of results."""
    status = run.status.value.lower()
    if run.status in run_service.ACTIVE:
        return (
            f"Run #{run.id} ({run.kind}) is {status} ({run.progress:.0%}): its results show "
            "here when it has finished; the Runs page follows it."
        )
    why = f": {run.error}" if run.error else ""
    return f"Run #{run.id} ({run.kind}) is {status}{why}. It stores no results."


def initial(ctx: WebContext, run_id: int | None, metric: str | None) -> HeadsInitial:
    """The page's first state: its pickers, the heatmap and the first per-position grid."""
    state = choices(ctx, run_id, metric)
    if state.run_id is None:
        return state
    state.position = position_view(ctx, state.position_choice, None, state.run_id)
    state.run_figures = taxonomy_run_figures(ctx, ctx.store.get_run(state.run_id))
    if state.metric is not None:
        state.spec = heatmap_spec(state.run_id, state.metric)
        state.figure = page_figure(ctx.reader, state.spec)
    return state


def clamp(cell: list[int], n_layers: int, n_heads: int) -> list[int]:
    """``[layer, head]`` moved inside the grid (a click on the plot's very edge rounds out)."""
    return [min(max(cell[0], 0), n_layers - 1), min(max(cell[1], 0), n_heads - 1)]


def move(selected: list[int] | None, key: str, n_layers: int, n_heads: int) -> list[int]:
    if not selected:
        return [0, 0]
    d_layer, d_head = MOVES.get(key, (0, 0))
    return clamp([selected[0] + d_layer, selected[1] + d_head], n_layers, n_heads)


def grid_shape(ctx: WebContext, run_id: int, metric: str) -> tuple[int, int]:
    grid = ctx.reader.head_grid(run_id, metric).frame
    return int(grid["layer"].max()) + 1, int(grid["head"].max()) + 1


@dataclass
class HeadDetail:
    title: str
    pattern_figure: Any
    pattern_spec: dict[str, Any] | None
    scores: list[dict[str, Any]]
    sae_features: list[dict[str, Any]]
    figures: list[FigureView] = field(default_factory=list)  # a taxonomy run's, of this head


def head_detail(
    ctx: WebContext, run_id: int, layer: int, head: int, prompt: int | None
) -> HeadDetail:
    run = ctx.store.get_run(run_id)
    scores = [
        {"run": f"#{run.id} {run.kind}", **s} for s in ctx.reader.head_scores(run.id, layer, head)
    ]
    for other in ctx.reader.related_runs(run):
        scores += [
            {"run": f"#{other.id} {other.kind}", **s}
            for s in ctx.reader.head_scores(other.id, layer, head)
        ]
    source = ctx.reader.pattern_run(run)
    if run.kind == "lens" and source is not None and source.prompt_set_id != run.prompt_set_id:
        source = None  # the prompt picker lists the lens run's prompts, not another set's
    figure, spec = None, None
    if source is not None:
        spec = {
            "kind": "pattern",
            "run": source.id,
            "layer": layer,
            "head": head,
            "prompt": int(prompt or 0),
        }
        try:
            figure = page_figure(ctx.reader, spec)
        except NotFound:
            figure, spec = None, None
    features = sae.head_top_features(ctx.store, run.model_spec, layer, head)
    figures = taxonomy_head_figures(ctx, run, layer, head)
    figures += lens_head_figures(ctx, run, layer, head, int(prompt or 0))
    return HeadDetail(f"Head {layer}.{head}", figure, spec, scores, features, figures)
