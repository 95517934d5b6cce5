"""Benchmark: what each analysis of the ``taxonomy`` run kind costs, in forwards and seconds.

Model: GPT-2-small-shaped random TL-native model (12 layers x 12 heads, d_model 768, d_mlp
3072, vocab 50257, n_ctx 256) booted with ``TransformerBridge.boot_native``; 8 prompts x 128
tokens, each with a 6-token needle at a random depth and its copy steps (so the retrieval path
runs). Every stage is timed and divided by the wall time of one forward of the same batch
(forward-equivalents). The streaming-per-head stage is also run the reference way — one
forward per head, editing that head's z from the clean pattern (``streamed_z_reference``) —
on a sample of heads, and the ratio printed.

    .venv/bin/python bench/taxonomy.py [--quick] [--threads 2] [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
from shapes import boot_gpt2_style
from transformer_lens.model_bridge import TransformerBridge

from analysis.heads import pattern_statistics, prompt_patterns
from analysis.taxonomy import patterns as P
from analysis.taxonomy.batch import TaxonomyBatch
from analysis.taxonomy.kv import kv_curve
from analysis.taxonomy.probe import probe_all
from analysis.taxonomy.streaming import head_deviation, streamed_z_reference

SHAPES = {
    "full": dict(n_layers=12, n_heads=12, d_model=768, d_mlp=3072, d_vocab=50257, prompts=8,
                 pos=128),
    "quick": dict(n_layers=4, n_heads=8, d_model=256, d_mlp=1024, d_vocab=8192, prompts=8,
                  pos=64),
}  # fmt: skip
NEEDLE, QUERY = 6, 2


def build(shape: dict, device: str) -> tuple[TransformerBridge, TaxonomyBatch]:
    model = boot_gpt2_style(shape, device)
    g = torch.Generator().manual_seed(0)
    n, width = shape["prompts"], shape["pos"]
    prompt_len = width - (NEEDLE - QUERY - 1)
    tokens = torch.randint(0, shape["d_vocab"], (n, width), generator=g)
    steps = NEEDLE - QUERY
    pos, target, source = (torch.zeros(n, steps, dtype=torch.long) for _ in range(3))
    for i in range(n):
        start = int(torch.randint(1, prompt_len - NEEDLE - QUERY, (1,), generator=g))
        needle = tokens[i, start : start + NEEDLE].clone()
        tokens[i, prompt_len - QUERY : prompt_len] = needle[:QUERY]
        tokens[i, prompt_len:] = needle[QUERY:-1]
        for j in range(steps):
            pos[i, j] = prompt_len - 1 + j
            target[i, j] = needle[QUERY + j]
            source[i, j] = start + QUERY + j
    batch = TaxonomyBatch(
        tokens, torch.full((n,), width), torch.full((n,), prompt_len - 1),
        tokens[:, 1], tokens[:, 2], pos, target, source, torch.ones(n, steps, dtype=torch.bool),
        [None] * n, [None] * n,
    )  # fmt: skip
    return model, batch


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    out, t0 = None, time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - t0) / repeat, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reference-heads", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shape = SHAPES["quick" if args.quick else "full"]
    model, batch = build(shape, args.device)
    tokens = batch.tokens.to(args.device)
    with torch.no_grad():
        model(tokens)
        forward_s, _ = timed(lambda: model(tokens), 3)
    sink, window = 4, 32
    rows = []

    def stage(name: str, forwards: float, fn) -> object:
        wall, out = timed(fn)
        rows.append((name, forwards, wall))
        return out

    n = batch.n_prompts
    totals = stage("patterns, retrieval, spans, sinks, norms, JS distances", 1.0,
                   lambda: probe_all(model, batch, 0.9, 0.3))  # fmt: skip
    seqs = torch.randint(0, shape["d_vocab"], (16, 10), generator=torch.Generator().manual_seed(1))
    reps = torch.cat([seqs, seqs], dim=1).to(args.device)

    def razor() -> None:
        for seq in reps:
            (p,) = prompt_patterns(model, seq[None], [seq.shape[0]])
            pattern_statistics(p, seq.cpu())

    stage("echo + induction (16 repeated sequences x 20)", 16 * 20 / (n * batch.tokens.shape[1]),
          razor)  # fmt: skip
    heads = shape["n_layers"] * shape["n_heads"]
    dev = stage(f"streaming each head ({heads} heads)", heads + 1,
                lambda: head_deviation(model, batch, sink, window))  # fmt: skip
    stage("head similarity clusters", 0.0,
          lambda: P.cluster_heads(totals.distance_sum / n, 12))  # type: ignore[union-attr,operator]  # fmt: skip
    points, seeds = 9, 3
    stage(f"KV curve ({points} points x (2 rankings + {seeds} random))", points * (2 + seeds),
          lambda: kv_curve(model, batch, {"duo": dev.kl, "razor": dev.kl}, points, seeds, sink,
                           window))  # type: ignore[union-attr]  # fmt: skip
    k = args.reference_heads
    every = torch.ones(n, dtype=torch.bool)

    def reference() -> None:
        for h in range(k):
            chosen = torch.zeros(n, shape["n_heads"], dtype=torch.bool)
            chosen[:, h] = every
            streamed_z_reference(model, tokens, h % shape["n_layers"], chosen, sink, window)

    ref_s, _ = timed(reference)
    print(f"shape: {shape}, device {args.device}, {args.threads} threads, sink {sink}, "
          f"window {window}; one forward of the batch: {forward_s:.3f} s")  # fmt: skip
    print(f"{'stage':60s} {'forwards':>9s} {'wall s':>8s} {'fwd-equiv':>9s}")
    total = 0.0
    for name, forwards, wall in rows:
        total += wall
        print(f"{name:60s} {forwards:9.1f} {wall:8.2f} {wall / forward_s:9.1f}")
    print(f"{'total':60s} {'':9s} {total:8.2f} {total / forward_s:9.1f}")
    per_head_ref = ref_s / k
    per_head_ours = [w for nm, _, w in rows if nm.startswith("streaming")][0] / heads
    print(f"streaming per head: headlab {per_head_ours:.3f} s (batched over a layer's heads), "
          f"reference z-edit {per_head_ref:.3f} s (2 forwards per head) -> "
          f"ratio headlab/reference {per_head_ours / per_head_ref:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
