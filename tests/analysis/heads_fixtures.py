"""Tiny random models of three architectures (with a character tokenizer) for head-analysis tests.

TL-native attention-only (boot_native), GPT-2-style HF and Llama-style HF (rotary, RMSNorm,
grouped-query attention) — all built offline from configs with random weights.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

CHARS = string.ascii_lowercase + " .,"
SPECIALS = ["<bos>", "<pad>"]


def char_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIALS + list(CHARS))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", 0)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<bos>",
        pad_token="<pad>",
        add_bos_token=True,
        name_or_path="char",
    )


VOCAB = len(SPECIALS) + len(CHARS)


def native_attn_only(seed: int = 0, n_ctx: int = 32):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=32, d_head=8, n_heads=4, n_layers=2, n_ctx=n_ctx, d_vocab=VOCAB,
        attn_only=True, normalization_type="LN", seed=seed,
    )  # fmt: skip
    model = TransformerBridge.boot_native(cfg, tokenizer=char_tokenizer())
    model.enable_compatibility_mode()
    return model


def _boot_hf(hf_cfg, folder: Path, seed: int, norms: bool = False):
    """``norms``: random norm weights (and biases) too, so folding them is exercised."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    hf = AutoModelForCausalLM.from_config(hf_cfg)
    with torch.no_grad():  # larger weights than HF's default init, for visible effects
        for name, p in hf.named_parameters():
            if p.dim() > 1:
                p.normal_(0, 0.2)
            elif norms and ("norm" in name or "ln" in name):
                p.add_(torch.randn_like(p) * 0.3)
    hf.save_pretrained(folder)
    char_tokenizer().save_pretrained(folder)
    model = TransformerBridge.boot_transformers(str(folder), device="cpu")
    model.enable_compatibility_mode()
    return model


def gpt2_style(folder: Path, seed: int = 0):
    from transformers import GPT2Config

    cfg = GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                     bos_token_id=0, eos_token_id=0, pad_token_id=1)  # fmt: skip
    return _boot_hf(cfg, folder, seed)


def llama_style(folder: Path, seed: int = 0):
    from transformers import LlamaConfig

    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=32, bos_token_id=0, eos_token_id=0,
                      pad_token_id=1)  # fmt: skip
    return _boot_hf(cfg, folder, seed)


# ---- more architectures (tests/analysis/test_architectures.py) --------------------------------
# Parallel attention + MLP with partial rotary (GPT-NeoX / Pythia: rotate-half on the first
# rotary_pct of each head; GPT-J: adjacent pairs on the first rotary_dim), Gemma-2 (attention and
# final-logit soft-capping, GQA, sandwich norms) and Qwen2 / Mistral (GQA, RMSNorm, rotary;
# Qwen2 has q/k/v biases).
_SMALL = dict(vocab_size=VOCAB, bos_token_id=0, eos_token_id=0, pad_token_id=1)


def neox_style(folder: Path, seed: int = 0, norms: bool = False, parallel: bool = True):
    from transformers import GPTNeoXConfig

    cfg = GPTNeoXConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, rotary_pct=0.5, max_position_embeddings=32,
                        use_parallel_residual=parallel, **_SMALL)  # fmt: skip
    return _boot_hf(cfg, folder, seed, norms)


def gptj_style(folder: Path, seed: int = 0, norms: bool = False):
    from transformers import GPTJConfig

    cfg = GPTJConfig(n_embd=32, n_layer=2, n_head=4, n_inner=64, rotary_dim=4, n_positions=32,
                     **_SMALL)  # fmt: skip
    return _boot_hf(cfg, folder, seed, norms)


def gemma2_style(folder: Path, seed: int = 0, norms: bool = False):
    from transformers import Gemma2Config

    cfg = Gemma2Config(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                       max_position_embeddings=32, query_pre_attn_scalar=8,
                       sliding_window=16, attn_logit_softcapping=5.0,
                       final_logit_softcapping=10.0, **_SMALL)  # fmt: skip
    return _boot_hf(cfg, folder, seed, norms)


def qwen2_style(folder: Path, seed: int = 0, norms: bool = False):
    from transformers import Qwen2Config

    cfg = Qwen2Config(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                      **_SMALL)  # fmt: skip
    return _boot_hf(cfg, folder, seed, norms)


def mistral_style(folder: Path, seed: int = 0, norms: bool = False):
    from transformers import MistralConfig

    cfg = MistralConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                        max_position_embeddings=32, sliding_window=None, **_SMALL)  # fmt: skip
    return _boot_hf(cfg, folder, seed, norms)
