"""The measurements behind each zoo model's MECHANISM.md and ground_truths/.

``python -m analysis.zoo.evidence <name>`` prints them as JSON; the zoo tests assert the key facts
on the shipped weights. Prompts are seeded and drawn from the training distribution.
"""

from __future__ import annotations

import argparse
import json
import random
import string
from typing import Any

import torch
from jaxtyping import Float, Int
from transformer_lens.head_detector import detect_head
from transformer_lens.model_bridge import TransformerBridge

from analysis.hooks import HookSite
from analysis.zoo.probes import head_ablation, mlp_ablation, path_ablation

HEAD_KINDS = ("previous_token_head", "induction_head", "duplicate_token_head")


def repeat_prompts(n: int = 20, seed: int = 0, length: int = 60) -> list[str]:
    """Random lowercase strings (period 8-20) repeated to ``length`` characters."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        period = rng.randint(8, 20)
        unit = "".join(rng.choice(string.ascii_lowercase) for _ in range(period))
        prompts.append((unit * (length // period + 1))[:length])
    return prompts


def detect_scores(model: TransformerBridge, prompts: list[str]) -> dict[str, list[list[float]]]:
    """TransformerLens ``detect_head`` scores [layer][head], averaged over the prompts."""
    return {
        # detect_head is annotated for HookedTransformer; it runs on a bridge (tested)
        kind: detect_head(model, prompts, kind).round(decimals=4).tolist()  # type: ignore[arg-type]
        for kind in HEAD_KINDS
    }


def _repeat_batch(model: TransformerBridge, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = random.Random(seed)
    rows, masks = [], []
    for _ in range(n):
        period = rng.randint(8, 20)
        unit = "".join(rng.sample(string.ascii_lowercase, period))
        text = (unit * 8)[:60]
        tokens = model.to_tokens(text)[0]
        mask = torch.zeros(len(tokens) - 1, dtype=torch.bool)
        mask[period:] = True  # target index t+1 > period: inside the second copy or later
        rows.append(tokens)
        masks.append(mask)
    return torch.stack(rows), torch.stack(masks)


def masked_loss_metric(tokens: Int[torch.Tensor, "batch pos"], mask: torch.Tensor):
    def metric(logits: Float[torch.Tensor, "batch pos d_vocab"]) -> torch.Tensor:
        logprobs = logits[:, :-1].log_softmax(-1)
        target = logprobs.gather(-1, tokens[:, 1:, None])[..., 0]
        return -(target * mask).sum() / mask.sum()

    return metric


def _group_ablation(model: TransformerBridge, tokens: torch.Tensor, metric, layer: int) -> float:
    """Metric change when every head of ``layer`` is mean-ablated at once."""

    def hook(z: torch.Tensor, hook=None) -> torch.Tensor:
        return z.mean(dim=(0, 1), keepdim=True).expand_as(z)

    with torch.no_grad():
        base = float(metric(model(tokens)))
        with model.hooks(fwd_hooks=[(HookSite("z", layer).name, hook)]):
            return float(metric(model(tokens))) - base


def induction_evidence(model: TransformerBridge, n: int = 32, seed: int = 0) -> dict[str, Any]:
    """detect_head scores, head ablations and path ablations on the second-copy loss.

    Paths into layer 1 are measured per receiver head and into all layer-1 heads at once
    (``a1.*``), since redundant induction heads can each look unimportant alone."""
    tokens, mask = _repeat_batch(model, n, seed)
    metric = masked_loss_metric(tokens, mask)
    with torch.no_grad():
        base = float(metric(model(tokens)))
    n_heads = model.cfg.n_heads
    senders = ["input", *(f"a0.h{h}" for h in range(n_heads))]
    paths: dict[str, float] = {}
    for receiver in [*range(n_heads), None]:
        name = "a1.*" if receiver is None else f"a1.h{receiver}"
        for channel in ("q", "k", "v", "q+k"):
            for sender in senders:
                effect = path_ablation(model, tokens, metric, sender, (1, receiver), channel)
                paths[f"{sender} -> {name}<{channel}>"] = round(effect, 4)
    for head in range(n_heads):
        for channel in ("q", "k", "v"):
            for sender in ("input", "input.pos"):
                effect = path_ablation(model, tokens, metric, sender, (0, head), channel)
                paths[f"{sender} -> a0.h{head}<{channel}>"] = round(effect, 4)
    return {
        "detect_head": detect_scores(model, repeat_prompts()),
        "second_copy_loss": round(base, 4),
        "head_ablation": head_ablation(model, tokens, metric).round(decimals=4).tolist(),
        "layer_ablation": [
            round(_group_ablation(model, tokens, metric, layer), 4)
            for layer in range(model.cfg.n_layers)
        ],
        "path_ablation": paths,
    }


EVIDENCE = {"induction-2l": induction_evidence}


def comparison_batch(model: TransformerBridge, n: int = 64, seed: int = 0):
    """``<filler>YY>`` prompts of one length (filler 3) and the ideal Z1 distribution of each."""
    rng = random.Random(seed)
    texts, ideal = [], torch.zeros(n, model.cfg.d_vocab)
    digit_ids = [int(model.to_tokens(d, prepend_bos=False)[0, 0]) for d in string.digits]
    for row in range(n):
        yy = rng.randint(0, 98)
        filler = "".join(rng.choices(string.ascii_lowercase + string.digits, k=3))
        texts.append(f"{filler}{yy:02d}>")
        for zz in range(yy + 1, 100):
            ideal[row, digit_ids[zz // 10]] += 1 / (99 - yy)
    return model.to_tokens(texts), ideal


def ideal_cross_entropy(ideal: torch.Tensor):
    """Cross-entropy of the prediction at the last position against the ideal distribution."""

    def metric(logits: Float[torch.Tensor, "batch pos d_vocab"]) -> torch.Tensor:
        logprobs = logits[:, -1].log_softmax(-1)
        return -(ideal * logprobs).sum(-1).mean()

    return metric


def greater_than_evidence(model: TransformerBridge, n: int = 64, seed: int = 0) -> dict[str, Any]:
    """Attention from '>' to Y1/Y2, head and MLP ablations, and path ablations."""
    tokens, ideal = comparison_batch(model, n, seed)
    metric = ideal_cross_entropy(ideal)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
        base = float(metric(model(tokens)))
    last = tokens.shape[1] - 1
    attention = {}
    for layer in range(model.cfg.n_layers):
        pattern = cache["pattern", layer][:, :, last]  # batch head k_pos
        for head in range(model.cfg.n_heads):
            attention[f"a{layer}.h{head}"] = {
                "Y1": round(float(pattern[:, head, last - 2].mean()), 3),
                "Y2": round(float(pattern[:, head, last - 1].mean()), 3),
                "self": round(float(pattern[:, head, last].mean()), 3),
                "bos": round(float(pattern[:, head, 0].mean()), 3),
            }
    paths: dict[str, float] = {}
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    for layer in range(n_layers):
        senders = ["input", *(f"a{s}.h{h}" for s in range(layer + 1) for h in range(n_heads))]
        for sender in senders:
            effect = path_ablation(model, tokens, metric, sender, (layer, None), "mlp", last)
            paths[f"{sender} -> m{layer} (last position)"] = round(effect, 4)
    for head in range(n_heads):
        for channel, sender in (("q", "input.pos"), ("k", "input.pos"), ("v", "input")):
            effect = path_ablation(model, tokens, metric, sender, (0, head), channel)
            paths[f"{sender} -> a0.h{head}<{channel}>"] = round(effect, 4)
    return {
        "ideal_cross_entropy": round(base, 4),
        "attention_from_last": attention,
        "head_ablation": head_ablation(model, tokens, metric).round(decimals=4).tolist(),
        "mlp_ablation": mlp_ablation(model, tokens, metric).round(decimals=4).tolist(),
        "path_ablation": paths,
    }


EVIDENCE["greater-than-3l"] = greater_than_evidence


def main(argv: list[str] | None = None) -> None:
    from analysis.models import load_model

    parser = argparse.ArgumentParser(description="Measure a zoo model's mechanism.")
    parser.add_argument("name", choices=sorted(EVIDENCE))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = EVIDENCE[args.name](load_model(f"zoo:{args.name}"))
    print(json.dumps(result, indent=1))  # noqa: T201 — a command-line report


if __name__ == "__main__":
    main()
