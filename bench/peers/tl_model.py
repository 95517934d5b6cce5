"""Shared by the peer drivers (run inside a peer venv, never imported by headlab): load the bench's
HF GPT-2 folder as a TransformerLens HookedTransformer and read the bench's pair file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def load_hooked(folder: str) -> Any:
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(folder)
    c = hf.config
    cfg = HookedTransformerConfig(
        n_layers=c.n_layer, d_model=c.n_embd, n_heads=c.n_head, d_head=c.n_embd // c.n_head,
        d_mlp=c.n_inner or 4 * c.n_embd, n_ctx=c.n_positions, d_vocab=c.vocab_size,
        act_fn="gelu_new", normalization_type="LN", eps=c.layer_norm_epsilon,
        default_prepend_bos=False, device="cpu",
    )  # fmt: skip
    model = HookedTransformer(cfg)
    model.load_and_process_state_dict(convert_gpt2_weights(hf, cfg), fold_ln=True)
    model.eval()
    return model


def load_pairs(path: str) -> dict[str, torch.Tensor]:
    """{"clean", "corrupted": [pair, pos] tokens, "answer", "wrong": [pair]}."""
    raw = json.loads(Path(path).read_text())
    return {k: torch.tensor(v) for k, v in raw.items()}


def logit_diff_sum(logits: torch.Tensor, pairs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over pairs of logit(answer) - logit(wrong) at the last position."""
    last = logits[:, -1]
    rows = torch.arange(last.shape[0])
    return (last[rows, pairs["answer"]] - last[rows, pairs["wrong"]]).sum()
