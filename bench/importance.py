"""Benchmark: what head importance and pruning curves cost, in forward-equivalents.

Models: a GPT-2-small-shaped random TL-native model (12 layers x 12 heads, d_model 768, d_mlp
3072, vocab 50257) booted with ``TransformerBridge.boot_native`` on 8 random prompts of 32
tokens, and the zoo's induction-2l on 32 induction-contrast pairs. Each stage's wall time is
divided by the wall time of one plain forward of the same prompts (forward-equivalents):

- gradient importance (the LM loss and the task metric): one forward and one backward;
- the iterative gradient order (Michel): one gradient pass per recomputation;
- the pruning curves of the default run (4 orders x 11 points): every mask evaluated in
  batched forwards (``MaskEvaluator``), against the reference of one forward per mask
  (``evaluate_masks_exact``) on the same masks; the ratio is printed.

    .venv/bin/python bench/importance.py [--quick] [--threads 2] [--device cuda]

On a machine shared with other jobs, ``--threads 1`` keeps torch's threads from spinning
against them (two threads on two busy cores slowed a zoo forward a hundredfold here).
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from typing import Any

import torch
from shapes import boot_gpt2_style
from transformer_lens.model_bridge import TransformerBridge

from analysis.importance.evaluate import MaskEvaluator, evaluate_masks_exact
from analysis.importance.gradient import head_gradients, importance
from analysis.importance.pruning import (
    ascending_order,
    iterative_order,
    prefix_masks,
    random_orders,
    removal_counts,
)
from analysis.prompt_batch import PairBatch, build_pair_batch, pair_batch_from_tokens

SHAPES = {
    "full": dict(n_layers=12, n_heads=12, d_model=768, d_mlp=3072, d_vocab=50257, prompts=8,
                 pos=32),
    "quick": dict(n_layers=4, n_heads=8, d_model=256, d_mlp=1024, d_vocab=8192, prompts=8,
                  pos=32),
}  # fmt: skip


def gpt2_shaped(shape: dict, device: str) -> tuple[TransformerBridge, PairBatch]:
    model = boot_gpt2_style(shape, device)
    g = torch.Generator().manual_seed(0)
    n, width = shape["prompts"], shape["pos"]
    tokens = torch.randint(0, shape["d_vocab"], (n, width), generator=g).tolist()
    answers = torch.randint(0, shape["d_vocab"], (2, n), generator=g).tolist()
    batch = pair_batch_from_tokens(tokens, tokens, answers[0], answers[1], device=device)
    return model, batch


def zoo(device: str) -> tuple[TransformerBridge, PairBatch]:
    from analysis.models import load_model
    from analysis.prompts.generators import generate_pairs

    model = load_model("zoo:induction-2l", device=device)
    return model, build_pair_batch(model, generate_pairs(model, "induction-contrast", 32, 0))


def timed(fn: Callable[[], Any], device: str, repeat: int = 1) -> tuple[float, Any]:
    """The fastest of ``repeat`` timed calls after a warm-up call (others' load on a shared
    machine only ever adds time)."""
    out = fn()
    best = float("inf")
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def default_masks(model: TransformerBridge, batch: PairBatch) -> torch.Tensor:
    """The masks of a default run's curves: gradient, ablation-like, 3 random orders."""
    shape = (int(model.cfg.n_layers), int(model.cfg.n_heads))
    n = shape[0] * shape[1]
    scores = importance(head_gradients(model, batch, "loss", "logit_diff", None))
    orders = [ascending_order(scores), ascending_order(-scores), *random_orders(n, 3, 0)]
    counts = removal_counts(n, 11)
    return torch.cat([prefix_masks(o, counts, shape) for o in orders])


def bench(name: str, model: TransformerBridge, batch: PairBatch, device: str) -> None:
    shape = (int(model.cfg.n_layers), int(model.cfg.n_heads))
    n_heads = shape[0] * shape[1]

    def forward() -> Any:
        with torch.no_grad():
            return model(batch.clean)

    def against_forward(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, float, Any]:
        """(stage seconds, forward-equivalents, output): a shared machine's load drifts, so
        the forward is timed right before and after the stage and the faster one counts."""
        before, _ = timed(forward, device, repeat=3)
        t, out = timed(fn, device, repeat)
        after, _ = timed(forward, device, repeat=3)
        return t, t / min(before, after), out

    t_fwd, _ = timed(forward, device, repeat=5)
    print(f"\n{name}: {shape[0]}x{shape[1]} heads, {batch.n_pairs} prompts x {batch.n_pos} tokens")
    print(f"  one forward: {1000 * t_fwd:.1f} ms")
    for objective in ("loss", "metric"):
        gradient = functools.partial(head_gradients, model, batch, objective, "logit_diff", None)
        _, fe, _ = against_forward(gradient, repeat=3)
        print(f"  gradient importance ({objective}): {fe:.2f} forward-equivalents")

    def iterative() -> Any:
        def score(mask: torch.Tensor) -> torch.Tensor:
            grads = head_gradients(model, batch, "loss", "logit_diff", None, mask)
            return importance(grads) * (mask > 0)

        return iterative_order(score, shape, max(1, round(0.1 * n_heads)))

    _, fe, (_, passes) = against_forward(iterative)
    print(f"  iterative gradient order ({passes} passes): {fe:.1f} forward-equivalents")
    masks = default_masks(model, batch)
    n, distinct = masks.shape[0], int(torch.unique(masks.flatten(1), dim=0).shape[0])
    evaluator = MaskEvaluator(model, batch, "logit_diff", None)
    _, fe_batched, _ = against_forward(lambda: evaluator.evaluate(masks))
    _, fe_exact, _ = against_forward(
        lambda: evaluate_masks_exact(model, batch, "logit_diff", None, masks)
    )
    print(
        f"  pruning curves, {n} masks ({distinct} distinct), chunk {evaluator.chunk} "
        f"masks/forward: batched {fe_batched:.1f} forward-equivalents "
        f"({fe_batched / distinct:.2f} per distinct mask); one forward per mask "
        f"{fe_exact:.1f} ({fe_exact / n:.2f} per mask); batched / per-mask = "
        f"{fe_batched / fe_exact:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shape = SHAPES["quick" if args.quick else "full"]
    label = "GPT-2-small shape (random)" if not args.quick else "reduced GPT-2 shape (random)"
    print(f"device {args.device}, {torch.get_num_threads()} threads")
    bench(label, *gpt2_shaped(shape, args.device), args.device)
    bench("zoo:induction-2l (induction-contrast)", *zoo(args.device), args.device)


if __name__ == "__main__":
    main()
