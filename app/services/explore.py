"""The Explore page's runs: submit a text (reusing an identical run), read what it stored.

Torch-free. A submission is an ``explore`` run config (``analysis.configs.explore``); an
identical config (same model, text or prompt, next token, options) that is finished, queued
or running is reused instead of enqueued again, so the same text on the same model runs once.
The finished run's ``patterns.safetensors`` (``prompt0``: ``[layer, head, q, k]``),
``tokens.json`` and ``explore.json`` (targets, logit lens, embedding and MLP DLA) are read
through ``ResultStore.open_artifact``; the small parts are memoized per run (finished runs never
change), patterns are read one head at a time from the memory-mapped file (a 12 × 12-head model
on 256 tokens holds 19 MB of them), and the thumbnails are built once per run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from safetensors import safe_open

from analysis.configs import ConfigError, parse_run_config
from analysis.provenance import code_version
from app.export.errors import ExportError
from app.figures import explore as explore_figures
from app.launching import enqueue_config
from app.services.results import ResultsReader
from storage.errors import NotFound
from storage.records import RunRecord, RunStatus
from storage.store import ResultStore

KIND = "explore"
PATTERNS, TOKENS, EXPLORE = "patterns.safetensors", "tokens.json", "explore.json"
SCORE_ORDER = (
    "prev_token_score", "bos_mass", "self_mass", "duplicate_token_score", "induction_score",
    "entropy", "mean_distance", "local_mass", "dla_top", "dla_next",
)  # fmt: skip
REUSE_LOOKBACK = 500  # newest explore runs searched for an identical config
Spec = dict[str, Any]


class ExploreError(ValueError):
    """The text, model or run cannot be explored; one line naming the problem and the fix."""


def make_config(
    model: str,
    text: str | None = None,
    *,
    next_token: str | None = None,
    prompt_set: str | None = None,
    prompt_index: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The validated config of an exploration, as stored; ``ExploreError`` names the field."""
    data: dict[str, Any] = {"kind": KIND, "model": (model or "").strip(), **options}
    for key, value in (("text", text), ("next_token", next_token), ("prompt_set", prompt_set),
                       ("prompt_index", prompt_index)):  # fmt: skip
        if value is not None:
            data[key] = value
    if not data["model"]:
        raise ExploreError("model: pick a model")
    try:
        return parse_run_config(data).model_dump(mode="json")
    except ConfigError as exc:  # a whole-config check names its own field first
        raise ExploreError(str(exc).removeprefix("config: ")) from None


def find_reusable(store: ResultStore, config: dict[str, Any]) -> RunRecord | None:
    """The newest finished run with exactly this config made by this code version, else a
    queued or running one (this version's workers compute it). A finished run of another code
    version is not reused: what it stored may have been computed differently."""
    waiting, current = None, code_version()
    for run in store.list_runs(kind=KIND, limit=REUSE_LOOKBACK):
        if run.config != config:
            continue
        if run.status == RunStatus.FINISHED:
            if run.code_version == current:
                return run
            continue
        if waiting is None and not run.status.is_terminal:
            waiting = run
    return waiting


def submit(store: ResultStore, config: dict[str, Any]) -> tuple[RunRecord, bool]:
    """(the run of ``config``, whether it was reused): an identical run, else a new queued one."""
    found = find_reusable(store, config)
    if found is not None:
        return found, True
    return enqueue_config(store, parse_run_config(config)), False


def submit_from_page(
    store: ResultStore, model: str | None, text: str | None, next_token: str | None
) -> tuple[RunRecord, bool]:
    """The page's submit: only a registered model, the next token blank for none."""
    model = (model or "").strip()
    registered = {m.spec for m in store.list_models()}
    if not model:
        raise ExploreError("model: pick a model")
    if model not in registered:
        raise ExploreError(
            f"model: {model!r} is not registered; add it on the Models page "
            "(or `headlab models add SPEC`)"
        )
    next_token = next_token if next_token not in (None, "") else None
    config = make_config(model, text if text is not None else "", next_token=next_token)
    return submit(store, config)


def prompt_text(store: ResultStore, prompt_set: str, index: int) -> str:
    """The clean text of prompt ``index`` of a stored set; ``ExploreError`` names a bad one."""
    try:
        record = store.get_prompt_set(prompt_set)
    except NotFound:
        raise ExploreError(f"prompt_set: no prompt set named {prompt_set!r}") from None
    pairs = store.get_pairs(record.id)
    if not 0 <= index < len(pairs):
        raise ExploreError(f"prompt #: set {prompt_set!r} has prompts 0..{len(pairs) - 1}")
    return pairs[index].clean


def model_options(store: ResultStore) -> list[str]:
    """Registered model specs, for the page's dropdown."""
    return list(dict.fromkeys(m.spec for m in store.list_models()))


# -- reading a finished run ------------------------------------------------------------------


@dataclass(frozen=True)
class ExploreView:
    run: int
    model: str
    text: str
    tokens: list[str]
    path: str  # the run's verified patterns.safetensors
    shape: tuple[int, int, int, int]  # [layer, head, q, k]
    scores: dict[str, np.ndarray]  # metric → [layer, head]
    targets: dict[str, dict[str, Any]]  # role → {id, text}
    logit_lens: dict[str, list[dict[str, float]]]
    lens_top: list[list[tuple[str, float]]]
    components: dict[str, dict[str, float]]

    def pattern(self, layer: int, head: int) -> np.ndarray:
        """One head's ``[q, k]`` pattern, float32."""
        with safe_open(self.path, framework="np") as fh:
            return np.asarray(fh.get_slice("prompt0")[layer, head], dtype=np.float32)

    @property
    def patterns(self) -> np.ndarray:
        """Every head's pattern ``[layer, head, q, k]``, float32 (read in full)."""
        with safe_open(self.path, framework="np") as fh:
            return np.asarray(fh.get_tensor("prompt0"), dtype=np.float32)

    @property
    def n_layers(self) -> int:
        return self.shape[0]

    @property
    def n_heads(self) -> int:
        return self.shape[1]

    def score_rows(self) -> list[dict[str, Any]]:
        """One row per head: ``head`` (L.H) and every score on this text."""
        names = [m for m in SCORE_ORDER if m in self.scores]
        names += sorted(set(self.scores) - set(names))
        return [
            {"head": f"{layer}.{head}"}
            | {name: float(self.scores[name][layer, head]) for name in names}
            for layer in range(self.n_layers)
            for head in range(self.n_heads)
        ]


def explore_run(store: ResultStore, run_id: int) -> RunRecord:
    try:
        run = store.get_run(int(run_id))
    except NotFound:
        raise ExportError(
            f"no run {run_id}; `headlab runs list --kind explore` lists them"
        ) from None
    if run.kind != KIND:
        raise ExportError(f"run {run.id} is a {run.kind} run, not an explore run")
    if run.status != RunStatus.FINISHED:
        raise ExportError(f"run {run.id} is {run.status.value}, not finished")
    return run


def view(reader: ResultsReader, run_id: int) -> ExploreView:
    """A finished explore run's data (read once per run)."""
    run = explore_run(reader.store, run_id)
    return reader.memo(f"explore:{run.id}", lambda: _read(reader, run))


def _read(reader: ResultsReader, run: RunRecord) -> ExploreView:
    store = reader.store
    try:
        pat = store.open_artifact(run.id, PATTERNS)
        tok = store.open_artifact(run.id, TOKENS)
        det = store.open_artifact(run.id, EXPLORE)
    except NotFound as exc:
        raise ExportError(f"run {run.id}: {exc}") from None
    with safe_open(str(pat.path), framework="np") as fh:
        n_layers, n_heads, n_q, n_k = fh.get_slice("prompt0").get_shape()
    with open(tok.path, encoding="utf-8") as fh:
        tokens = [str(t) for t in json.load(fh)["prompts"][0]]
    with open(det.path, encoding="utf-8") as fh:
        detail = json.load(fh)
    tables = reader.tables(run.id).aggregate
    scores = {}
    for metric, frame in tables.items():
        grid = np.full((n_layers, n_heads), np.nan)
        grid[frame["layer"].to_numpy(int), frame["head"].to_numpy(int)] = frame["value"]
        scores[metric] = grid
    return ExploreView(
        run=run.id,
        model=run.model_spec,
        text=str(detail.get("text", "")),
        tokens=tokens,
        path=str(pat.path),
        shape=(int(n_layers), int(n_heads), int(n_q), int(n_k)),
        scores=scores,
        targets={t["role"]: {"id": t["id"], "text": t["text"]} for t in detail["targets"]},
        logit_lens=detail["logit_lens"],
        lens_top=[[(str(t), float(p)) for t, p in row] for row in detail["lens_top"]],
        components=detail.get("components", {}),
    )


def thumbnails(reader: ResultsReader, run_id: int) -> list[list[str]]:
    """``[layer][head]`` PNG data URIs of every head's pattern (built once per run)."""
    found = view(reader, run_id)

    def build() -> list[list[str]]:
        patterns = found.patterns
        return [[explore_figures.thumbnail_png(patterns[la, h]) for h in range(found.n_heads)]
                for la in range(found.n_layers)]  # fmt: skip

    return reader.memo(f"explore thumbnails:{found.run}", build)


def parse_heads(value: Any, n_layers: int, n_heads: int) -> list[tuple[int, int]]:
    """``["1.2", …]`` (or ``"1.2,0.3"``) → [(1, 2), …]; ``ExportError`` names a bad one."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    heads = []
    for item in items:
        text = str(item).strip()
        layer, dot, head = text.partition(".")
        if not (dot and layer.isdigit() and head.isdigit()):
            raise ExportError(f"head {text!r}: write LAYER.HEAD, e.g. 1.2")
        if not (int(layer) < n_layers and int(head) < n_heads):
            raise ExportError(
                f"no head {text}: the model has layers 0..{n_layers - 1} and heads 0..{n_heads - 1}"
            )
        heads.append((int(layer), int(head)))
    if not heads:
        raise ExportError("the overlay needs heads (--heads 1.2,0.3)")
    return list(dict.fromkeys(heads))


def default_overlay_heads(found: ExploreView, n: int = 6) -> list[str]:
    """The overlay's first heads: those of the last layer (at most ``n``)."""
    layer = found.n_layers - 1
    return [f"{layer}.{h}" for h in range(min(n, found.n_heads))]


def _query(found: ExploreView, spec: Spec) -> int:
    n = len(found.tokens)
    query = n - 1 if spec.get("query") is None else int(spec["query"])
    if not 0 <= query < n:
        raise ExportError(f"token {query}: the text has tokens 0..{n - 1}")
    return query


def attention_at(found: ExploreView, layer: int, head: int, pos: int, direction: str) -> np.ndarray:
    """One head's attention from token ``pos`` (over keys) or to it (from every query)."""
    pattern = found.pattern(layer, head)
    return pattern[pos] if direction == "from" else pattern[:, pos]


def overlay_figure(reader: ResultsReader, spec: Spec) -> go.Figure:
    found = view(reader, int(spec["run"]))
    wanted = spec.get("heads") or default_overlay_heads(found)
    heads = parse_heads(wanted, found.n_layers, found.n_heads)
    query = _query(found, spec)
    direction = "to" if spec.get("direction") == "to" else "from"
    rows = [attention_at(found, la, h, query, direction) for la, h in heads]
    return explore_figures.overlay(rows, heads, found.tokens, query, direction=direction)


def lens_figure(reader: ResultsReader, spec: Spec) -> go.Figure:
    found = view(reader, int(spec["run"]))
    targets = {role: str(t["text"]) for role, t in found.targets.items()}
    return explore_figures.logit_lens(found.logit_lens, targets, found.n_layers)


def heads_figure(reader: ResultsReader, spec: Spec) -> go.Figure:
    found = view(reader, int(spec["run"]))
    title = f"run #{found.run} · every head's attention"
    return explore_figures.head_patterns(found.patterns, title=title)


def token_shading(
    found: ExploreView, layer: int, head: int, pos: int, direction: str
) -> list[float]:
    """Per token, the attention that the shading of the token text shows."""
    return [float(v) for v in attention_at(found, layer, head, pos, direction)]
