"""A ``lens`` run's stored lenses, read for the figures (torch-free).

The run's ``lens.safetensors`` (written by ``analysis/lens/job.py``) holds token ids and values
per head: ``ov.mean.*`` and ``ov.source.*`` (the OV lens' average and per-source top promoted /
suppressed tokens, ``ov.sources`` the source ids), and per prompt ``i`` ``logit_lens.prompt{i}.*``
and ``trained_lens.prompt{i}.*`` (``[layer, head, position, k]`` ids and probabilities). Its
``tokens.json`` gives each prompt's tokens and ids and the text of every id. Both are opened
through ``ResultStore.open_artifact`` (size and sha256 checked) and read one head at a time
with safetensors' numpy reader.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import plotly.graph_objects as go
from safetensors import safe_open

from app.export.errors import ExportError
from app.figures import lens as lens_figures
from app.services.results import ResultsReader
from storage.errors import NotFound
from storage.records import RunRecord

LENS_FILE, TOKENS_FILE = "lens.safetensors", "tokens.json"
LENSES = {"logit_lens": "head logit lens", "trained_lens": "trained lens"}
Spec = dict[str, Any]


def _path(reader: ResultsReader, run: RunRecord, name: str) -> str:
    try:
        return str(reader.store.open_artifact(run.id, name).path)
    except NotFound:
        raise ExportError(
            f"run {run.id} ({run.kind}) has no {name} artifact: lens figures come from a lens "
            "run (headlab run lens MODEL --prompts NAME)"
        ) from None


def _tokens(reader: ResultsReader, run: RunRecord) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        with open(_path(reader, run, TOKENS_FILE), encoding="utf-8") as fh:
            return json.load(fh)

    return reader.memo(f"lens tokens:{run.id}", read)


def _read(path: str, keys: list[str], layer: int, head: int) -> dict[str, np.ndarray] | None:
    """One head's slice of each key, or None when the file lacks one of them."""
    with safe_open(path, framework="np") as fh:
        names = set(fh.keys())
        if any(k not in names for k in keys):
            return None
        return {k: np.asarray(fh.get_slice(k)[layer, head]) for k in keys}


def _head(reader: ResultsReader, run: RunRecord, spec: Spec, name: str) -> tuple[int, int]:
    if spec.get("layer") is None or spec.get("head") is None:
        raise ExportError(f"the {name} figure needs --head LAYER.HEAD")
    layer, head = int(spec["layer"]), int(spec["head"])
    with safe_open(_path(reader, run, LENS_FILE), framework="np") as fh:
        n_layers, n_heads = fh.get_slice("ov.mean.top_ids").get_shape()[:2]
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise ExportError(
            f"no head {layer}.{head}: the model has layers 0..{n_layers - 1} and heads "
            f"0..{n_heads - 1}"
        )
    return layer, head


def _prompt(run: RunRecord, tokens: dict[str, Any], spec: Spec) -> int:
    prompt, n = int(spec.get("prompt") or 0), len(tokens.get("prompts", []))
    if not 0 <= prompt < n:
        raise ExportError(f"run {run.id} has prompts 0..{n - 1}; --prompt {prompt} is not one")
    return prompt


def _texts(vocab: dict[str, str], ids: np.ndarray) -> list[Any]:
    if ids.ndim == 1:
        return [vocab.get(str(int(i)), str(int(i))) for i in ids]
    return [_texts(vocab, row) for row in ids]


def _copy_score(reader: ResultsReader, run: RunRecord, layer: int, head: int) -> float | None:
    grid = reader.tables(run.id).aggregate.get("ov_copy_score")
    if grid is None:
        return None
    hit = grid[(grid["layer"] == layer) & (grid["head"] == head)]
    return float(hit["value"].iloc[0]) if len(hit) else None


def ov_lens_view(reader: ResultsReader, spec: Spec) -> lens_figures.OvLensView:
    run = reader.store.get_run(int(spec["run"]))
    layer, head = _head(reader, run, spec, "ov-lens")
    tokens = _tokens(reader, run)
    prompt = _prompt(run, tokens, spec)
    keys = [f"ov.mean.{f}" for f in ("top_ids", "top_logits", "bottom_ids", "bottom_logits")]
    path = _path(reader, run, LENS_FILE)
    part = _read(path, keys, layer, head)
    source = _read(path, ["ov.source.top_ids", "ov.source.top_logits"], layer, head)
    if part is None or source is None:
        raise ExportError(f"run {run.id}: {LENS_FILE} has no OV lens")
    with safe_open(path, framework="np") as fh:
        source_ids = [int(i) for i in fh.get_tensor("ov.sources")]
    vocab = tokens.get("vocab", {})
    where = {s: i for i, s in enumerate(source_ids)}
    ids = tokens.get("prompt_ids", [[]])[prompt]
    order = [where[t] for t in dict.fromkeys(ids) if t in where]  # distinct, in order
    meta = run.summary.get("ov") or {}
    n = meta.get("n_sources")
    return lens_figures.OvLensView(
        layer=layer,
        head=head,
        source_set=f"{meta.get('source_set', 'sources')}" + (f" ({n} tokens)" if n else ""),
        promoted=list(zip(_texts(vocab, part[keys[0]]), part[keys[1]].tolist(), strict=True)),
        suppressed=list(zip(_texts(vocab, part[keys[2]]), part[keys[3]].tolist(), strict=True)),
        sources=[vocab.get(str(source_ids[i]), str(source_ids[i])) for i in order],
        source_top=[_texts(vocab, source["ov.source.top_ids"][i]) for i in order],
        source_logits=[source["ov.source.top_logits"][i].tolist() for i in order],
        copy_score=_copy_score(reader, run, layer, head),
    )


def lens_tokens_view(reader: ResultsReader, spec: Spec, lens: str) -> lens_figures.LensTokensView:
    run = reader.store.get_run(int(spec["run"]))
    name = "head-lens" if lens == "logit_lens" else "trained-lens"
    layer, head = _head(reader, run, spec, name)
    tokens = _tokens(reader, run)
    prompt = _prompt(run, tokens, spec)
    keys = [f"{lens}.prompt{prompt}.ids", f"{lens}.prompt{prompt}.probs"]
    part = _read(_path(reader, run, LENS_FILE), keys, layer, head)
    if part is None:
        hint = " (launch it with --train)" if lens == "trained_lens" else ""
        raise ExportError(f"run {run.id} has no {LENSES[lens]}{hint}")
    return lens_figures.LensTokensView(
        layer=layer,
        head=head,
        lens=LENSES[lens],
        tokens=[str(t) for t in tokens["prompts"][prompt]],
        top=_texts(tokens.get("vocab", {}), part[keys[0]]),
        probs=part[keys[1]].tolist(),
    )


def ov_lens_figure(reader: ResultsReader, spec: Spec) -> go.Figure:
    return lens_figures.ov_lens(ov_lens_view(reader, spec))


def logit_lens_figure(reader: ResultsReader, spec: Spec) -> go.Figure:
    return lens_figures.lens_tokens(lens_tokens_view(reader, spec, "logit_lens"))


def trained_lens_figure(reader: ResultsReader, spec: Spec) -> go.Figure:
    return lens_figures.lens_tokens(lens_tokens_view(reader, spec, "trained_lens"))
