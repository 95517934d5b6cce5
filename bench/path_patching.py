"""Path patching: the fast path, the edge-mask path and the exact hooked passes side by side.

On each zoo model: every head into the logits, and every head below the last layer into each
last-layer head's q, k and v separately (the sender × receiver grid of a ``path-patch`` run).
Prints each method's wall time, the exact/fast ratio and the largest difference between them.

    .venv/bin/python bench/path_patching.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch

from analysis.models import load_model
from analysis.path_patching.job import all_heads
from analysis.path_patching.paths import PatchPath, PathPatcher, receiver_channel
from analysis.prompt_batch import build_pair_batch
from analysis.prompts.generators import generate_pairs

CASES = (("zoo:induction-2l", "induction-contrast", 64), ("zoo:code-6l", "identifier-induction", 8))


def grid_paths(pp: PathPatcher) -> list[PatchPath]:
    g = pp.graph
    last = [f"a{g.n_layers - 1}.h{h}" for h in range(g.n_heads)]
    paths = [PatchPath(s, ("logits",)) for s in all_heads(g)]
    for s in all_heads(g):
        if int(s.split(".")[0][1:]) < g.n_layers - 1:
            paths += [PatchPath(s, (receiver_channel(g, r, k),)) for r in last for k in "qkv"]
    return paths


def timed(fn, paths) -> tuple[torch.Tensor, float]:
    t0 = time.perf_counter()
    out = fn(paths)
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="induction-2l only")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for spec, task, n in CASES[:1] if args.quick else CASES:
        model = load_model(spec)
        batch = build_pair_batch(model, generate_pairs(model, task, n, 0))
        pp = PathPatcher.build(model, batch, "logit_diff", "noising")
        paths = grid_paths(pp)
        pp.replay()  # the recording is part of the setup, as the two baselines
        fast, t_fast = timed(pp.fast, paths)
        edges, t_edges = timed(pp.fast_edges, paths)
        exact, t_exact = timed(pp.exact, paths)
        diff = max(float((fast - exact).abs().max()), float((edges - exact).abs().max()))
        print(
            f"{spec}: {len(paths)} paths, {batch.n_pairs} pairs × {batch.clean.shape[1]} tokens; "
            f"fast {t_fast:.2f} s, edge masks {t_edges:.2f} s, exact {t_exact:.2f} s; "
            f"exact/fast {t_exact / t_fast:.1f}×; max |diff| {diff:.1e}"
        )


if __name__ == "__main__":
    main()
