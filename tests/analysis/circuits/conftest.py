"""Tiny random models and prompt batches for the circuit tests (built once per session)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from analysis.prompt_batch import PairBatch, pair_batch_from_tokens

torch.set_num_threads(2)
VOCAB = 40


def perturb_norms(model, scale: float = 0.3) -> None:
    """Non-trivial layer-norm weights, so that folding them into W_Q etc. is exercised."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name or "norm" in name:
                p.add_(torch.randn(p.shape, generator=gen) * scale)


def native_model(attn_only: bool, seed: int = 0):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=32, d_head=8, n_heads=4, n_layers=2, n_ctx=32, d_vocab=VOCAB, d_mlp=64,
        act_fn="gelu", attn_only=attn_only, normalization_type="LN", seed=seed,
    )  # fmt: skip
    model = TransformerBridge.boot_native(cfg)
    perturb_norms(model)
    model.enable_compatibility_mode()
    return model


def hf_model(kind: str):
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    from analysis.zoo.tokenizer import build_char_tokenizer

    folder = Path(tempfile.mkdtemp(prefix="circuits-hf-"))
    tok = build_char_tokenizer("abcdefghijklmnopqrstuvwxyz0123456789", folder / "tok")
    if kind == "gpt2":
        cfg = GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=VOCAB, n_positions=32)
    else:
        cfg = LlamaConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=VOCAB, intermediate_size=64, max_position_embeddings=32,
        )  # fmt: skip
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.2) if p.dim() > 1 else None
    perturb_norms(hf)
    hf.save_pretrained(folder / "model")
    model = TransformerBridge.boot_transformers(str(folder / "model"), device="cpu", tokenizer=tok)
    model.enable_compatibility_mode()
    return model


def random_batch(n: int = 4, pos: int = 8, seed: int = 0, ragged: bool = True) -> PairBatch:
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(3, VOCAB, (n, pos), generator=gen)
    corrupt = torch.randint(3, VOCAB, (n, pos), generator=gen)
    lengths = [pos - (i % 3 if ragged else 0) for i in range(n)]
    answers = torch.randint(3, VOCAB, (2, n), generator=gen)
    return pair_batch_from_tokens(
        [c[:k].tolist() for c, k in zip(clean, lengths, strict=True)],
        [c[:k].tolist() for c, k in zip(corrupt, lengths, strict=True)],
        answers[0].tolist(),
        answers[1].tolist(),
    )


@pytest.fixture(scope="session")
def mlp_model():
    return native_model(attn_only=False)


@pytest.fixture(scope="session")
def attn_model():
    return native_model(attn_only=True, seed=3)


@pytest.fixture(scope="session")
def batch() -> PairBatch:
    return random_batch()
