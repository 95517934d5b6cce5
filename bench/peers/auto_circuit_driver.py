"""Runs auto-circuit's mask-gradient EAP, its integrated-gradients variant and its ACDC inside
auto-circuit's own venv.

    python auto_circuit_driver.py MODEL_FOLDER PAIRS_JSON OUT_JSON IG_STEPS THREADS ACDC_TAU

IG_STEPS 0 skips EAP and EAP-IG, ACDC_TAU 0 skips ACDC. Writes
{"wall_s": {method: s}, "scores": {method: {"src->dst": score}}}, edges renamed to headlab's
names ("Resid Start" -> input, "A1.2" -> a1.h2, "A1.2.Q" -> a1.h2<q>, "MLP 0" -> m0,
"Resid End" -> logits). Scores are auto-circuit's own (its sign and scale;
bench/peers/side_by_side.py maps them); ACDC's score is its kept flag (1 kept, 0 removed).
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tl_model import load_hooked, load_pairs


def headlab_name(name: str) -> str:
    if name == "Resid Start":
        return "input"
    if name == "Resid End":
        return "logits"
    if m := re.fullmatch(r"MLP (\d+)", name):
        return f"m{m[1]}"
    if m := re.fullmatch(r"A(\d+)\.(\d+)(?:\.([QKV]))?", name):
        return f"a{m[1]}.h{m[2]}" + (f"<{m[3].lower()}>" if m[3] else "")
    raise ValueError(f"unexpected auto-circuit node name {name!r}")


def main() -> None:
    folder, pairs_path, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
    steps, threads, tau = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    from auto_circuit.data import PromptDataLoader, PromptDataset
    from auto_circuit.prune_algos.ACDC import acdc_prune_scores
    from auto_circuit.prune_algos.mask_gradient import mask_gradient_prune_scores
    from auto_circuit.utils.graph_utils import patchable_model

    torch.set_num_threads(threads)
    model = load_hooked(folder)
    model.set_use_attn_result(True)
    model.set_use_split_qkv_input(True)
    model.set_use_hook_mlp_in(True)
    pairs = load_pairs(pairs_path)
    n = pairs["clean"].shape[0]
    dataset = PromptDataset(
        pairs["clean"], pairs["corrupted"],
        [a.view(1) for a in pairs["answer"]], [w.view(1) for w in pairs["wrong"]],
    )  # fmt: skip
    loader = PromptDataLoader(dataset, seq_len=None, diverge_idx=0, batch_size=n, shuffle=False)
    pm = patchable_model(model, factorized=True, slice_output="last_seq", separate_qkv=True)
    names = {e: f"{headlab_name(e.src.name)}->{headlab_name(e.dest.name)}" for e in pm.edges}

    def named(scores: dict[str, torch.Tensor], fn: Any = float) -> dict[str, float]:
        return {names[e]: fn(scores[e.dest.module_name][e.patch_idx].item()) for e in pm.edges}

    runs: dict[str, Any] = {
        "eap": lambda: mask_gradient_prune_scores(
            pm, loader, None, grad_function="logit", answer_function="avg_diff", mask_val=0.0
        ),
        "eap-ig": lambda: mask_gradient_prune_scores(
            pm,
            loader,
            None,
            grad_function="logit",
            answer_function="avg_diff",
            integrated_grad_samples=steps,
        ),  # fmt: skip
    }
    out: dict[str, Any] = {"wall_s": {}, "scores": {}}
    for label, fn in runs.items() if steps > 0 else ():
        t0 = time.perf_counter()
        scores = fn()
        out["wall_s"][label] = time.perf_counter() - t0
        out["scores"][label] = named(scores)
    if tau > 0:
        base, exp = _tau_parts(tau)
        t0 = time.perf_counter()
        scores = acdc_prune_scores(pm, loader, None, tao_exps=[exp], tao_bases=[base])
        out["wall_s"]["acdc"] = time.perf_counter() - t0
        out["scores"]["acdc"] = named(scores, lambda s: 1.0 if math.isinf(s) else 0.0)
    Path(out_path).write_text(json.dumps(out))


def _tau_parts(tau: float) -> tuple[int, int]:
    """tau = base * 10**exp with an integer base (auto-circuit's tao_bases / tao_exps)."""
    exp = math.floor(math.log10(tau))
    base = round(tau / 10**exp)
    if not math.isclose(base * 10**exp, tau):
        raise ValueError(f"ACDC tau {tau} is not an integer times a power of ten")
    return base, exp


if __name__ == "__main__":
    main()
