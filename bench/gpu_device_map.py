"""GPU check of the multi-GPU path: a model split over the GPUs (``device_map``) computes what the
same model on one device computes, and an analysis runs on it end to end.

Builds a random-init GPT-2-shaped HF checkpoint (12 layers, d_model 256) in a temp folder, loads
it with ``device_map=auto|balanced`` (``--device-map``) and on ``cuda:0`` alone, and reports:
where each block went, the largest logit difference between the two (float32), and a ``heads``
analysis on the split model against the single-device one (largest per-head score difference).
Exits 1 on a mismatch beyond ``--atol``. On one GPU the split is trivial (everything on cuda:0)
and the script says so; on none it stops with a message. The head statistics are those of a
``heads`` run (``analysis.heads``: entropy, BOS mass, previous-token, induction, …).

Run on a machine with GPUs: ``.venv/bin/python bench/gpu_device_map.py [--device-map balanced]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402


def build_checkpoint(folder: Path) -> Path:
    from transformers import AutoModelForCausalLM, GPT2Config

    from analysis.zoo.tokenizer import build_char_tokenizer

    chars = "abcdefghijklmnopqrstuvwxyz .,"
    config = GPT2Config(
        vocab_size=len(chars) + 3, n_positions=128, n_embd=256, n_layer=12, n_head=8
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    build_char_tokenizer(chars, folder)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device-map", choices=["auto", "balanced"], default="balanced")
    parser.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here: run this on a machine with GPUs")
        return 1
    from analysis.heads import average_statistics, prompt_patterns
    from analysis.models import load_model

    n_gpus = torch.cuda.device_count()
    with tempfile.TemporaryDirectory() as tmp:
        spec = f"hf:{build_checkpoint(Path(tmp) / 'ckpt')}"
        split = load_model(spec, device_map=args.device_map)
        single = load_model(spec, device="cuda")
        placed = Counter(str(p.device) for p in split.parameters())
        print(f"{n_gpus} GPU(s); parameters per device with device_map={args.device_map}:")
        for device, count in sorted(placed.items()):
            print(f"  {device}: {count} tensors")
        if n_gpus > 1 and len(placed) < 2:
            print("the model was not split although several GPUs are visible")
        tokens = single.to_tokens(["the cat sat on the mat.", "a b c a b c a b c."])
        with torch.no_grad():
            a = split(tokens.to(next(split.parameters()).device)).float().cpu()
            b = single(tokens).float().cpu()
        logit_diff = float((a - b).abs().max())
        print(f"max |logit difference| split vs single: {logit_diff:.3g}")
        lengths = [tokens.shape[1]] * tokens.shape[0]
        stats_split = average_statistics(prompt_patterns(split, tokens, lengths), tokens.cpu())
        stats_single = average_statistics(prompt_patterns(single, tokens, lengths), tokens.cpu())
        score_diff = max(
            float((stats_split[k].cpu() - stats_single[k].cpu()).abs().max()) for k in stats_single
        )
        print(f"max |head statistic difference| split vs single: {score_diff:.3g}")
    ok = logit_diff <= args.atol and score_diff <= args.atol
    print("OK" if ok else f"MISMATCH beyond atol={args.atol}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
