"""Job of the run kind ``explore``: one forward on one text, everything the Explore page shows.

The text (``text``, or a stored prompt's clean text) is tokenized as the model does
(``to_tokens``, BOS prepended where the model prepends one) and run once with
``run_with_cache``. Stored:

- ``patterns.safetensors``: every head's pattern ``[layer, head, q, k]`` (float16) under key
  ``prompt0``, and ``tokens.json`` (``prompts``: the token strings; ``ids``), the same layout as
  a ``heads`` run's, so the ``pattern`` figure, ``Run.attention`` and export read it as they do;
- per-head aggregate rows: the statistics of ``analysis.heads.pattern_statistics`` on this text
  (``entropy``, ``mean_distance``, ``bos_mass``, ``local_mass``, ``prev_token_score``, and
  ``duplicate_token_score`` / ``induction_score`` only when a token repeats, where they are
  defined), ``self_mass`` (mean attention of a query on itself), and ``dla_top`` / ``dla_next``:
  each head's direct logit attribution to the top / given next token at the last position;
- ``explore.json``: the targets, the DLA of the embeddings, MLPs and biases, and the logit lens per
  layer (the residual stream entering each layer and the final one through ``ln_final`` and
  ``unembed``, a fresh norm per layer as ``analysis.dla``): each target's logit, probability
  and rank, and the lens' own top tokens.

A head's DLA is ``z[h] @ W_O[h]`` at the last position through the final norm with its cached
scale (``ActivationCache.apply_ln_to_stack``) dotted with ``W_U[:, token]``, exactly
TransformerLens' ``logit_attrs(stack_head_results(...))`` (tests/analysis/test_explore.py); the
writes are ``analysis.dla.component_writes``', so post-attention norms (Gemma-2) and a final
soft-cap are handled as there, and ``biases`` (``b_O``, ``b_U[token]``) completes the sum.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

from analysis.configs.explore import ExploreConfig
from analysis.dla import component_writes, lens_logits, project_components, unembed_bias
from analysis.heads import detection_patterns, pattern_statistics
from analysis.hooks import HookSite
from analysis.jobs import JobContext, JobError, grid_rows
from storage.records import ArtifactIn, HeadResultIn, RunOutput

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

PATTERNS_FILE, TOKENS_FILE, EXPLORE_FILE = "patterns.safetensors", "tokens.json", "explore.json"
LENS_TOP = 5  # tokens of the logit lens' own top list per layer


class ExploreInputError(ValueError):
    """The text or the next token cannot be explored on this model; one line, with the fix."""


@dataclass(frozen=True)
class Target:
    """A next token whose DLA and logit lens are computed."""

    role: str  # "top" (the model's own top next token) or "next" (the config's next_token)
    id: int
    text: str


@dataclass(frozen=True)
class Exploration:
    """Everything one forward gives; tensors on the CPU, float32."""

    tokens: list[int]
    strings: list[str]
    patterns: torch.Tensor  # [layer, head, q, k]
    scores: dict[str, torch.Tensor]  # metric → [layer, head]
    targets: list[Target]
    dla: dict[str, torch.Tensor]  # role → [layer, head]
    components: dict[str, dict[str, float]]  # role → {embed, pos_embed, mlp L: DLA}
    lens: dict[str, list[dict[str, float]]]  # role → per layer {logit, prob, rank}
    lens_top: list[list[tuple[str, float]]]  # per layer: the lens' top tokens and probs
    final_logits: torch.Tensor  # [d_vocab] at the last position


def _unknown_characters(model: TransformerBridge, text: str) -> list[str]:
    unk = getattr(model.tokenizer, "unk_token_id", None)
    if unk is None:
        return []
    bad = []
    for ch in dict.fromkeys(text):
        if unk in model.to_tokens(ch, prepend_bos=False)[0].tolist():
            bad.append(ch)
    return bad


def tokenize(model: TransformerBridge, text: str, max_tokens: int) -> list[int]:
    """The text's token ids as the model reads it; ``ExploreInputError`` when it cannot."""
    if getattr(model, "tokenizer", None) is None:
        raise ExploreInputError("model: it has no tokenizer, so it cannot read text")
    if text.strip() == "":
        raise ExploreInputError("text: it is empty; type or paste some text")
    ids = model.to_tokens(text, truncate=False)[0].tolist()
    bad = _unknown_characters(model, text)
    if bad:
        shown = " ".join(repr(c) for c in bad[:10]) + (" …" if len(bad) > 10 else "")
        raise ExploreInputError(
            f"text: characters {shown} are not in the model's vocabulary; remove them"
        )
    n_ctx = int(model.cfg.n_ctx)
    if len(ids) > n_ctx:
        raise ExploreInputError(
            f"text: it is {len(ids)} tokens, more than the model's context of {n_ctx}; shorten it"
        )
    if len(ids) > max_tokens:
        raise ExploreInputError(
            f"text: it is {len(ids)} tokens, more than max_tokens={max_tokens}; shorten it or "
            "raise --max-tokens"
        )
    return ids


def next_token_id(model: TransformerBridge, token: str) -> int:
    """The id of ``token`` if it is exactly one token of the model."""
    ids = model.to_tokens(token, prepend_bos=False)[0].tolist()
    if len(ids) != 1:
        parts = ", ".join(repr(t) for t in model.to_str_tokens(torch.tensor(ids)))
        raise ExploreInputError(
            f"next_token: {token!r} is {len(ids)} tokens for this model ({parts}); give one token"
        )
    unk = getattr(model.tokenizer, "unk_token_id", None)
    if unk is not None and ids[0] == unk:
        raise ExploreInputError(f"next_token: {token!r} is not in the model's vocabulary")
    return int(ids[0])


def _token_texts(model: TransformerBridge, tokens: list[int]) -> list[str]:
    """Token strings (token ids as text for a model without a tokenizer)."""
    if getattr(model, "tokenizer", None) is None:
        return [str(t) for t in tokens]
    return [str(s) for s in model.to_str_tokens(torch.tensor(tokens))]


def _token_text(model: TransformerBridge, token: int) -> str:
    return _token_texts(model, [token])[0]


def _scores(patterns: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    scores = pattern_statistics(patterns, tokens)
    defined = {name: bool(det.sum() > 0) for name, det in detection_patterns(tokens).items()}
    scores = {k: v for k, v in scores.items() if defined.get(k, True)}
    scores["self_mass"] = patterns.float().diagonal(dim1=-2, dim2=-1).mean(-1)
    return scores


def _logit_lens(
    model: TransformerBridge, cache: Any, targets: list[Target]
) -> tuple[dict[str, list[dict[str, float]]], list[list[tuple[str, float]]]]:
    lens: dict[str, list[dict[str, float]]] = {t.role: [] for t in targets}
    tops: list[list[tuple[str, float]]] = []
    for row in lens_logits(model, cache, lambda act: act[:, -1]):
        logits = row[0].float()
        log_probs = logits.log_softmax(-1)
        for t in targets:
            lens[t.role].append({
                "logit": float(logits[t.id]),
                "prob": float(log_probs[t.id].exp()),
                "rank": int((logits > logits[t.id]).sum()),
            })  # fmt: skip
        top = log_probs.topk(min(LENS_TOP, log_probs.shape[0]))
        tops.append([(_token_text(model, int(i)), float(p.exp()))
                     for p, i in zip(top.values, top.indices, strict=True)])  # fmt: skip
    return lens, tops


def _dla(model: TransformerBridge, cache: Any, targets: list[Target]):
    """Per target: every head's DLA [layer, head] and the embeddings', MLPs' and biases'
    (``analysis.dla.component_writes`` at the last position: through post-attention norms with
    their scale frozen; in pre-cap logit space under a final soft-cap)."""
    n_layers = int(model.cfg.n_layers)
    parts, scale = component_writes(model, cache, lambda act: act[:, -1])
    dla: dict[str, torch.Tensor] = {}
    components: dict[str, dict[str, float]] = {}
    for t in targets:
        token = torch.tensor(t.id)
        direction = model.tokens_to_residual_directions(token)  # [d_model]
        projected = project_components(model, parts, scale, direction, unembed_bias(model, token))
        attrs = {k: v[:, 0] for k, v in projected.items()}  # the one prompt
        if not all(torch.isfinite(v).all() for v in attrs.values()):
            raise ExploreInputError("NaN or inf in the direct logit attribution; check the dtype")
        dla[t.role] = attrs["heads"].reshape(n_layers, -1).float().cpu()
        comp: dict[str, float] = {}
        for name in ("embed", "pos_embed"):
            if name in attrs:
                comp[name] = float(attrs[name][0])
        if "mlps" in attrs:
            comp |= {f"mlp {i}": float(v) for i, v in enumerate(attrs["mlps"].tolist())}
        comp["biases"] = float(attrs["biases"][0])
        components[t.role] = comp
    return dla, components


def explore(model: TransformerBridge, tokens: list[int], next_id: int | None = None) -> Exploration:
    """One forward of ``tokens`` (a BOS-prefixed id list, as ``tokenize`` gives it)."""
    n_layers = int(model.cfg.n_layers)
    device = model.W_E.device
    batch = torch.tensor([tokens], device=device)
    with torch.no_grad():
        logits, cache = model.run_with_cache(batch)
        patterns = torch.stack(
            [cache[HookSite("pattern", i).name][0] for i in range(n_layers)]
        ).float()
        if not torch.isfinite(patterns).all():
            raise ExploreInputError("NaN or inf in the attention patterns; check the dtype")
        final = logits[0, -1].float()
        top = int(final.argmax())
        targets = [Target("top", top, _token_text(model, top))]
        if next_id is not None:
            targets.append(Target("next", next_id, _token_text(model, next_id)))
        dla, components = _dla(model, cache, targets)
        lens, lens_top = _logit_lens(model, cache, targets)
    ids = torch.tensor(tokens)
    patterns = patterns.cpu()
    return Exploration(
        tokens=list(tokens),
        strings=_token_texts(model, list(tokens)),
        patterns=patterns,
        scores=_scores(patterns, ids),
        targets=targets,
        dla=dla,
        components=components,
        lens=lens,
        lens_top=lens_top,
        final_logits=final.cpu(),
    )


def _text(ctx: JobContext, cfg: ExploreConfig) -> tuple[str, str]:
    """(the text, where it came from)."""
    if cfg.text is not None:
        return cfg.text, "text"
    pairs = ctx.pairs()
    index = cfg.prompt_index or 0
    if not 0 <= index < len(pairs):
        raise JobError(
            f"prompt_index: set {cfg.prompt_set!r} has prompts 0..{len(pairs) - 1}; "
            f"{index} is not one"
        )
    return pairs[index].clean, f"prompt {index} of set {cfg.prompt_set}"


def explore_job(ctx: JobContext) -> RunOutput:
    t0 = time.perf_counter()
    cfg = ctx.config_as(ExploreConfig)
    model = ctx.model()
    text, source = _text(ctx, cfg)
    ctx.progress(0.1, "one forward")
    try:
        tokens = tokenize(model, text, cfg.max_tokens)
        next_id = None if cfg.next_token is None else next_token_id(model, cfg.next_token)
        found = explore(model, tokens, next_id)
    except ExploreInputError as exc:
        raise JobError(str(exc)) from None
    ctx.progress(0.8, "writing the patterns")
    pat_path = ctx.workdir / PATTERNS_FILE
    save_file({"prompt0": found.patterns.to(torch.float16).contiguous()}, str(pat_path))
    tok_path = ctx.workdir / TOKENS_FILE
    tok_path.write_text(json.dumps({"prompts": [found.strings], "ids": [found.tokens]}))
    detail = {
        "text": text,
        "source": source,
        "targets": [{"role": t.role, "id": t.id, "text": t.text} for t in found.targets],
        "components": found.components,
        "logit_lens": found.lens,
        "lens_top": found.lens_top,
    }
    ex_path = ctx.workdir / EXPLORE_FILE
    ex_path.write_text(json.dumps(detail))
    rows: list[HeadResultIn] = []
    for name in sorted(found.scores):
        rows += grid_rows(name, found.scores[name])
    for role, grid in found.dla.items():
        rows += grid_rows(f"dla_{role}", grid)
    ctx.progress(1.0, "done")
    summary = {
        "n_tokens": len(found.tokens),
        "source": source,
        "targets": detail["targets"],
        "n_forward": 1,
        "wall_s": time.perf_counter() - t0,
    }
    artifacts = [
        ArtifactIn(PATTERNS_FILE, "patterns", str(pat_path)),
        ArtifactIn(TOKENS_FILE, "tokens", str(tok_path), "application/json"),
        ArtifactIn(EXPLORE_FILE, "explore", str(ex_path), "application/json"),
    ]
    return RunOutput(head_results=rows, artifacts=artifacts, summary=summary)
