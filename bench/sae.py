"""Benchmark: attention-SAE training throughput, headlab vs sae-lens' own runner, one process.

Both train the same sae-lens TopK SAE (same d_sae, k, lr, batch) on ``blocks.L.attn.hook_z`` of
the same TransformerBridge model, from the same pre-sampled token sequences, for the same number
of tokens. Throughput = training tokens / wall seconds, covering activation generation (model
forwards) and SAE steps. sae-lens runs ``LanguageModelSAETrainingRunner`` with the bridge as
``override_model`` and the tokens as a pre-tokenised ``datasets.Dataset`` (``override_dataset``),
no W&B, no checkpoints, no evals. headlab runs ``train_attention_saes`` (its activation stream
feeding sae-lens' ``SAETrainer``). The runs alternate, ``--repeats`` times each; the median is
reported, per wall second and per CPU second of the process (the CPU figure is the fairer one
on a machine shared with other work). Offline: the default model is the shipped
``zoo:induction-2l``.

    .venv/bin/python bench/sae.py [--model zoo:induction-2l] [--layer 1] [--tokens 100000]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch


def sample_tokens(model: Any, spec: str, n_seqs: int, context: int, seed: int) -> torch.Tensor:
    from analysis.sae.activations import RepeatedTokens, ZooTaskTokens

    generator = torch.Generator().manual_seed(seed)
    if spec.startswith("zoo:"):
        source: Any = ZooTaskTokens.for_spec(spec, model)
    else:
        source = RepeatedTokens.for_model(model, context)
    batches, have = [], 0
    for batch in source.batches(64, generator):
        batches.append(batch.tokens[:, :context])
        have += batch.tokens.shape[0]
        if have >= n_seqs:
            return torch.cat(batches)[:n_seqs]
    raise AssertionError("unreachable")


def run_headlab(model: Any, tokens: torch.Tensor, args: argparse.Namespace) -> float:
    from analysis.sae.activations import FixedTokens
    from analysis.sae.train import TrainSettings, train_attention_saes

    source = FixedTokens(tokens, torch.ones_like(tokens, dtype=torch.bool), "bench tokens")
    settings = TrainSettings(
        d_sae=args.d_sae, k=args.k, lr=args.lr, batch_tokens=args.batch,
        training_tokens=args.tokens, context_size=tokens.shape[1],
        seqs_per_forward=args.seqs_per_forward, log_every=10**9,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        start, cpu = time.perf_counter(), time.process_time()
        result = train_attention_saes(model, source, [args.layer], settings, Path(out))
        return _rates(result.tokens, start, cpu)


def run_sae_lens(model: Any, tokens: torch.Tensor, args: argparse.Namespace) -> float:
    from datasets import Dataset
    from sae_lens import (
        LanguageModelSAERunnerConfig,
        LanguageModelSAETrainingRunner,
        LoggingConfig,
        TopKTrainingSAEConfig,
    )

    d_in = model.cfg.n_heads * model.cfg.d_head
    context = tokens.shape[1]
    cfg = LanguageModelSAERunnerConfig(
        sae=TopKTrainingSAEConfig(d_in=d_in, d_sae=args.d_sae, k=args.k,
                                  reshape_activations="hook_z"),
        model_name="bench", hook_name=f"blocks.{args.layer}.attn.hook_z", dataset_path="bench",
        is_dataset_tokenized=True, context_size=context, prepend_bos=False,
        training_tokens=args.tokens, train_batch_size_tokens=args.batch,
        store_batch_size_prompts=args.seqs_per_forward,
        n_batches_in_buffer=max(8, -(-8 * args.batch // context)),
        lr=args.lr, lr_end=args.lr, device="cpu", checkpoint_path=None, output_path=None,
        logger=LoggingConfig(log_to_wandb=False), verbose=False, seed=0,
    )  # fmt: skip
    dataset = Dataset.from_dict({"tokens": tokens.tolist()})
    start, cpu = time.perf_counter(), time.process_time()
    LanguageModelSAETrainingRunner(cfg, override_dataset=dataset, override_model=model).run()
    steps = args.tokens // args.batch
    return _rates(steps * args.batch, start, cpu)


def _rates(tokens: int, start: float, cpu: float) -> tuple[float, float]:
    """(tokens per wall second, tokens per CPU second of this process)."""
    return tokens / (time.perf_counter() - start), tokens / (time.process_time() - cpu)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="zoo:induction-2l")
    parser.add_argument("--layer", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=100_000, help="training tokens per run")
    parser.add_argument("--d-sae", type=int, default=256)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=512, help="tokens per SAE step")
    parser.add_argument("--seqs-per-forward", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    from analysis.models import load_model

    model = load_model(args.model)
    n_seqs = -(-args.tokens // model.cfg.n_ctx) + 64
    tokens = sample_tokens(model, args.model, n_seqs, model.cfg.n_ctx, seed=0)
    rates: dict[str, list[tuple[float, float]]] = {"headlab": [], "sae_lens": []}
    run_headlab(model, tokens[:64], argparse.Namespace(**{**vars(args), "tokens": 2048}))
    for _ in range(args.repeats):
        rates["sae_lens"].append(run_sae_lens(model, tokens, args))
        rates["headlab"].append(run_headlab(model, tokens, args))
    wall = {name: statistics.median(r[0] for r in runs) for name, runs in rates.items()}
    cpu = {name: statistics.median(r[1] for r in runs) for name, runs in rates.items()}
    report = {
        "model": args.model, "layer": args.layer, "training_tokens": args.tokens,
        "d_sae": args.d_sae, "k": args.k, "batch_tokens": args.batch, "threads": args.threads,
        "tokens_per_s": {name: round(v, 1) for name, v in wall.items()},
        "tokens_per_cpu_s": {name: round(v, 1) for name, v in cpu.items()},
        "all_runs_wall": {n: [round(r[0], 1) for r in runs] for n, runs in rates.items()},
        "speedup": round(wall["headlab"] / wall["sae_lens"], 3),
        "speedup_cpu": round(cpu["headlab"] / cpu["sae_lens"], 3),
    }  # fmt: skip
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
