"""Benchmark: the ``lens`` run kind on the zoo models, and its large-vocabulary path.

For each zoo model a real ``lens`` run (``--train``, default options) on a generated prompt set
of 16 pairs: per head the OV copy score (vocabulary and prompt tokens), the mean KL to the
model of the OV lens, the head logit lens and the trained lens (on its training sequences and
on the held-out quarter), the KL of the best constant distribution for reference, and the time
of each stage. ``--large`` adds a GPT-2-small-shaped
random model (12 × 12 heads, d_model 768, vocab 50257): its OV lens over the prompts' tokens
only (the vocabulary is above ``full_vocab_limit``) and the head logit lens, timed.

    .venv/bin/python bench/lens.py [--large] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

MODELS = (("zoo:induction-2l", "induction"), ("zoo:code-6l", "identifier-induction"))


def grid(lab, run_id: int, metric: str) -> torch.Tensor:
    frame = lab.store.head_results(run_id, metric)
    frame = frame[frame["prompt"].isna() & frame["position"].isna()]
    out = torch.zeros(int(frame["layer"].max()) + 1, int(frame["head"].max()) + 1)
    for row in frame.itertuples():
        out[int(row.layer), int(row.head)] = float(row.value)
    return out


def zoo(spec: str, task: str) -> None:
    import headlab

    home = Path(tempfile.mkdtemp(prefix="lens-bench-"))
    lab = headlab.Lab(home)
    lab.generate_prompts(task, spec, n=16, name="p")
    t0 = time.perf_counter()
    run = lab.run("lens", spec, "p", train=True, progress=False)
    wall = time.perf_counter() - t0
    s = run.record.summary
    print(f"\n== {spec} ({task}, {s['n_prompts']} prompts, {s['lens_positions']} positions)")
    print(f"run wall {wall:.1f} s (job {s['wall_s']:.1f} s):",
          ", ".join(f"{k} {v:.2f} s" for k, v in s["cost"].items()))  # fmt: skip
    ov = s["ov"]
    print(f"OV sources: {ov['source_set']} ({ov['n_sources']}), prompt tokens "
          f"{ov['n_prompt_sources']}")  # fmt: skip
    for metric in ("ov_copy_score", "ov_prompt_copy_score"):
        g = grid(lab, run.record.id, metric)
        print(f"{metric} per layer (heads across):")
        for layer, row in enumerate(g.tolist()):
            print(f"  L{layer}: " + " ".join(f"{v:.2f}" for v in row))
    print("mean KL:", {k: round(v, 3) for k, v in s["mean_kl"].items()},
          f"constant {s['constant_kl']:.3f}")  # fmt: skip
    held = (s["training"] or {}).get("heldout")
    if held:
        print(f"held out ({held['sequences']} sequences, {held['positions']} positions): mean KL",
              {k: round(v, 3) for k, v in held["mean_kl"].items()},
              f"constant {held['constant_kl']:.3f}")  # fmt: skip
    for metric, heads in s["best_kl_heads"].items():
        print(f"  lowest {metric}: " + ", ".join(f"{h['head']} {h['value']:.3f}" for h in heads))
    lab.close()


def large(threads: int) -> None:
    from shapes import GPT2_SMALL, boot_gpt2_style

    from analysis.lens.activations import collect
    from analysis.lens.logit_lens import logit_lens
    from analysis.lens.ov import ov_lens

    model = boot_gpt2_style(GPT2_SMALL)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50257, (8, 64), generator=g)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    t0 = time.perf_counter()
    act = collect(model, tokens, mask)
    t1 = time.perf_counter()
    ov = ov_lens(model, act, 5, full_vocab_limit=8192)
    t2 = time.perf_counter()
    lens = logit_lens(model, act, 5)
    t3 = time.perf_counter()
    print(f"\n== GPT-2-small-shaped random model, 8 × 64 tokens, {threads} threads")
    print(f"activations {t1 - t0:.1f} s; OV lens over {ov.n_sources} {ov.source_set} "
          f"{t2 - t1:.1f} s; head logit lens + KL + top-5 at {act.n} positions {t3 - t2:.1f} s; "
          f"mean logit-lens KL {float(lens.kl.mean()):.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for spec, task in MODELS:
        zoo(spec, task)
    if args.large:
        large(args.threads)


if __name__ == "__main__":
    main()
