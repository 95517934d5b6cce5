"""The ``throughput`` run kind: forward passes per second of a model on the worker's device.

Random token batches (seeded) are run through the model without gradients; the first pass is a
warm-up and is not timed. Reports tokens/s and ms per forward pass in the run summary.
"""

from __future__ import annotations

import time

import torch

from analysis.configs.throughput import ThroughputConfig
from analysis.jobs import JobContext, JobError
from storage.records import RunOutput


def run_throughput(ctx: JobContext) -> RunOutput:
    config = ctx.config_as(ThroughputConfig)
    model = ctx.model()
    n_ctx, d_vocab = int(model.cfg.n_ctx), int(model.cfg.d_vocab)
    if config.seq_len > n_ctx:
        raise JobError(f"seq_len: {config.seq_len} exceeds the model's context of {n_ctx} tokens")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(config.seed)
    tokens = torch.randint(0, d_vocab, (config.batch, config.seq_len), generator=generator)
    tokens = tokens.to(device)
    ctx.progress(0.0, "warm-up")
    with torch.no_grad():
        model(tokens)
        elapsed = 0.0
        for step in range(config.steps):
            start = time.perf_counter()
            logits = model(tokens)
            if not torch.isfinite(logits).all():
                raise JobError("the model produced NaN/inf logits on random tokens")
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed += time.perf_counter() - start
            ctx.progress((step + 1) / config.steps, f"forward {step + 1}/{config.steps}")
    tokens_total = config.steps * config.batch * config.seq_len
    summary = {
        "tokens_per_s": tokens_total / elapsed if elapsed > 0 else None,
        "ms_per_forward": 1000 * elapsed / config.steps,
        "device": str(device),
        "wall_s": elapsed,
    }
    return RunOutput(summary=summary)
