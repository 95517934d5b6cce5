"""Benchmark: headlab's fast head patching vs TransformerLens, side by side in one process.

Model: GPT-2-small-shaped random TL-native model (12 layers x 12 heads, d_model 768,
d_mlp 3072, vocab 50257) booted with ``TransformerBridge.boot_native``; 8 pairs x 20 tokens.

Runs ``transformer_lens.patching.get_act_patch_attn_head_out_all_pos`` (in full) and
``..._by_pos`` (by default on a random sample of its cells through ``generic_activation_patch``
with an ``index_df``, timed per cell and extrapolated to the full grid; ``--full-by-pos`` runs
it all), and headlab's ``fast_patch`` for both; checks agreement; prints speed ratios and each
path's share of the FLOP floor: the fewest FLOPs the patching needs (per variant: the patched
layer's output projection and MLP and the later layers, at the positions the patch can change,
with the last layer's query, output and MLP at the metric position only, and the unembedding
there), divided by the measured matmul rate of this machine.

    .venv/bin/python bench/patching.py [--quick] [--device cuda] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch
import transformer_lens.patching as tlp
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from analysis.metrics import last_logits, metric_per_prompt
from analysis.patching.exact import prepare
from analysis.patching.fast import fast_patch
from analysis.patching.strategies import PatchTarget
from analysis.prompt_batch import pair_batch_from_tokens

SHAPES = {
    "full": dict(n_layers=12, n_heads=12, d_model=768, d_mlp=3072, d_vocab=50257, pairs=8, pos=20),
    "quick": dict(n_layers=4, n_heads=8, d_model=256, d_mlp=1024, d_vocab=8192, pairs=8, pos=20),
}


def build(shape: dict, device: str):
    cfg = TransformerBridgeConfig(
        d_model=shape["d_model"], d_head=shape["d_model"] // shape["n_heads"],
        n_heads=shape["n_heads"], n_layers=shape["n_layers"], d_mlp=shape["d_mlp"],
        n_ctx=64, d_vocab=shape["d_vocab"], act_fn="gelu_new", normalization_type="LN",
        seed=0, device=device,
    )  # fmt: skip
    model = TransformerBridge.boot_native(cfg)
    model.enable_compatibility_mode()
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(0, shape["d_vocab"], (shape["pairs"], shape["pos"]), generator=g)
    corrupted = clean.clone()
    corrupted[:, shape["pos"] // 2] = torch.randint(0, shape["d_vocab"], (shape["pairs"],))
    answers = torch.randint(0, shape["d_vocab"], (2, shape["pairs"]), generator=g)
    batch = pair_batch_from_tokens(clean.tolist(), corrupted.tolist(), answers[0].tolist(),
                                   answers[1].tolist(), device=device)  # fmt: skip
    return model, batch


def matmul_rate(shape: dict, device: str) -> float:
    """FLOP/s of a forward-sized matmul ([rows, d_model] @ [d_model, d_mlp]) on this device."""
    rows = shape["pairs"] * shape["pos"] * 8
    a = torch.randn(rows, shape["d_model"], device=device)
    b = torch.randn(shape["d_model"], shape["d_mlp"], device=device)
    for _ in range(3):
        a @ b
    n, t0 = 20, time.perf_counter()
    for _ in range(n):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return n * 2 * rows * shape["d_model"] * shape["d_mlp"] / (time.perf_counter() - t0)


def floor_flops(shape: dict, per_position: bool) -> float:
    """Fewest FLOPs of head-output patching over all variants (see module docstring).

    A variant patching head z at layer li, position p must recompute, at the t - p positions
    the patch can change: the output projection and MLP of layer li, every later layer in
    full (q/k/v/o projections, attention over the keys, MLP), except that the last layer needs
    only keys and values there and its query, output projection and MLP at the metric position;
    then the unembedding at the metric position.
    """
    d, m, v, n_l, t, b = (shape[k] for k in ("d_model", "d_mlp", "d_vocab", "n_layers", "pos",
                                             "pairs"))  # fmt: skip
    mlp, attn = 4 * d * m, 4 * t * d  # per token: MLP; scores + weighted sum over <= t keys
    layer = 8 * d * d + mlp + attn
    last_layer_metric = 4 * d * d + mlp + attn  # query, output projection, MLP at one position
    total = 0.0
    for li in range(n_l):
        for p in range(t) if per_position else [0]:
            tokens = b * (t - p)
            if li == n_l - 1:
                cost = b * (2 * d * d + mlp)
            else:
                cost = tokens * (2 * d * d + mlp + (n_l - 2 - li) * layer + 4 * d * d)
                cost += b * last_layer_metric
            total += cost + b * 2 * d * v
    return total * shape["n_heads"]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def tl_by_pos_sample(model, batch, cache, metric, shape, n_sample):
    g = torch.Generator().manual_seed(1)
    dims = (shape["n_layers"], shape["pos"], shape["n_heads"])
    idx = torch.stack([torch.randint(0, d, (n_sample,), generator=g) for d in dims], dim=1)
    fn = tlp.get_act_patch_attn_head_out_by_pos
    df = pd.DataFrame(idx.tolist(), columns=list(fn.keywords["index_axis_names"]))
    values = tlp.generic_activation_patch(
        model, batch.corrupted, cache, metric, patch_setter=fn.keywords["patch_setter"],
        activation_name="z", index_df=df,
    )  # fmt: skip
    return [tuple(r) for r in idx.tolist()], values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smaller model shape")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--by-pos-sample", type=int, default=96, help="TL by-pos cells to time")
    ap.add_argument("--full-by-pos", action="store_true", help="run TL's by-pos grid in full")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shape = SHAPES["quick" if args.quick else "full"]
    model, batch = build(shape, args.device)
    setup = prepare(model, batch, "logit_diff")
    rate = matmul_rate(shape, args.device)
    print(f"shape {shape}  device {args.device}  matmul {rate / 1e9:.1f} GFLOP/s")

    def metric(logits):
        ll = last_logits(logits, batch.last)
        return setup.baseline.normalise(metric_per_prompt("logit_diff", ll, batch).mean())

    with torch.no_grad():
        _, cache = model.run_with_cache(batch.clean)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    rows = []
    for per_pos in (False, True):
        mine, t_mine = timed(lambda p=per_pos: (fast_patch(setup, PatchTarget("z", p)), sync()))
        grid = mine[0].tl_shaped(shape["n_layers"], shape["pos"], shape["n_heads"])
        if not per_pos:
            tl, t_tl = timed(lambda: tlp.get_act_patch_attn_head_out_all_pos(
                model, batch.corrupted, cache, metric))  # fmt: skip
            diff, note = (grid - tl.to(grid.device)).abs().max().item(), "full grid"
        elif args.full_by_pos:
            tl, t_tl = timed(lambda: tlp.get_act_patch_attn_head_out_by_pos(
                model, batch.corrupted, cache, metric))  # fmt: skip
            diff, note = (grid - tl.to(grid.device)).abs().max().item(), "full grid"
        else:
            (cells, tl), t_s = timed(lambda: tl_by_pos_sample(
                model, batch, cache, metric, shape, args.by_pos_sample))  # fmt: skip
            picked = torch.stack([grid[c] for c in cells]).to(tl.device)
            diff = (picked - tl).abs().max().item()
            t_tl = t_s * grid.numel() / len(cells)
            note = f"TL time extrapolated from {len(cells)} of {grid.numel()} cells"
        floor_s = floor_flops(shape, per_pos) / rate
        rows.append((per_pos, t_tl, t_mine, diff, floor_s, note))
    for per_pos, t_tl, t_mine, diff, floor_s, note in rows:
        name = "by_pos " if per_pos else "all_pos"
        print(
            f"{name}: TransformerLens {t_tl:8.1f} s ({floor_s / t_tl:6.1%} of FLOP floor) | "
            f"headlab fast {t_mine:7.1f} s ({floor_s / t_mine:6.1%}) | speed-up "
            f"{t_tl / t_mine:5.1f}x | max abs diff {diff:.2e} | floor {floor_s:.1f} s | {note}"
        )
        assert diff <= 1e-4, f"{name}: fast path disagrees with TransformerLens by {diff:.2e}"


if __name__ == "__main__":
    main()
