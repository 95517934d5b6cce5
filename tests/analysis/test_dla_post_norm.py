"""DLA on models with post-attention/post-MLP norms and final-logit soft-capping (Gemma-2).

The post-attention norm's scale is frozen at the forward's values: each head writes
``g * (z[h] @ W_O[h]) / rms``. Checked against a hand computation from ``run_with_cache`` hooks
and the HuggingFace checkpoint's own weights (not the bridge's processed ones), and the
components — embeddings, every head, every MLP, the biases — against the pre-cap logit
difference; on models without post-norms, against the model's logit difference, with random
biases so that the ``b_O`` / ``b_U`` terms count.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from analysis import dla as dla_module
from analysis.dla import direct_logit_attribution
from analysis.prompt_batch import pair_batch_from_tokens
from tests.analysis import heads_fixtures as F
from tests.analysis.arch_fixtures import (  # noqa: F401
    arch_model,
    dla_total,
    last_logits,
    logit_diff,
    pair_batch,
)

torch.set_num_threads(1)
TOL = 1e-4


def _boot_with_biases(hf_cfg, folder: Path, seed: int = 0):
    """A tiny HF model with every parameter random (norm gains, biases), saved and booted."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    hf = AutoModelForCausalLM.from_config(hf_cfg)
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.2) if p.dim() > 1 else p.add_(torch.randn_like(p) * 0.3)
    hf.save_pretrained(folder)
    F.char_tokenizer().save_pretrained(folder)
    model = TransformerBridge.boot_transformers(str(folder), device="cpu")
    model.enable_compatibility_mode()
    return model, hf


@pytest.fixture(scope="module")
def gemma2(tmp_path_factory):
    """Gemma-2 (soft-capping, GQA 4/2, post-norms) with attention biases, so b_O counts."""
    from transformers import Gemma2Config

    cfg = Gemma2Config(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                       max_position_embeddings=32, query_pre_attn_scalar=8, sliding_window=16,
                       attn_logit_softcapping=5.0, final_logit_softcapping=10.0,
                       attention_bias=True, **F._SMALL)  # fmt: skip
    return _boot_with_biases(cfg, tmp_path_factory.mktemp("gemma2b"))


def ragged(seed: int = 0, lengths=(7, 5, 6)):
    g = torch.Generator().manual_seed(seed)
    clean = [torch.randint(2, F.VOCAB, (n,), generator=g).tolist() for n in lengths]
    correct = torch.randint(2, F.VOCAB, (len(lengths),), generator=g)
    incorrect = (correct + 3) % (F.VOCAB - 2) + 2
    return pair_batch_from_tokens(clean, clean, correct.tolist(), incorrect.tolist(), pad_id=1)


def test_gemma2_components_sum_to_the_pre_cap_logit_diff(gemma2) -> None:
    model, _ = gemma2
    batch = ragged()
    ours = direct_logit_attribution(model, batch)
    logits, pre = last_logits(model, batch)
    cap = model.cfg.output_logits_soft_cap
    assert (cap * torch.tanh(pre / cap) - logits).abs().max() <= 1e-5
    assert (dla_total(ours) - logit_diff(pre, batch)).abs().max() <= TOL
    assert ours.biases.abs().min() > 1e-3  # the b_O shares are there
    # the cap matters here: the capped difference is not the components' sum
    assert (logit_diff(logits, batch) - dla_total(ours)).abs().max() > 1e-3
    # the logit lens applies the cap: its last entry is the model's own logit difference
    assert (ours.logit_lens[-1] - logit_diff(logits, batch)).abs().max() <= TOL


def test_gemma2_head_writes_equal_a_hand_computation_from_the_hooks(gemma2) -> None:
    """Each head's write, by hand: its slice of the checkpoint's o_proj applied to hook_z,
    times (1 + the post-attention norm's weight), over the RMS of ln1_post.hook_in computed
    here; then the final RMS norm's (1 + weight) and the checkpoint's lm_head rows. The biases
    (o_proj's, and v_proj's through o_proj: TransformerLens folds b_V into b_O, so hook_z
    leaves it out) are not a head's."""
    model, hf = gemma2
    batch = ragged(seed=1)
    ours = direct_logit_attribution(model, batch)
    hf_cfg, layers = hf.config, hf.model.layers
    eps, n_heads, d_head = hf_cfg.rms_norm_eps, hf_cfg.num_attention_heads, hf_cfg.head_dim
    rows = torch.arange(batch.n_pairs)

    def rms(x: torch.Tensor) -> torch.Tensor:
        return (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()

    with torch.no_grad():
        _, cache = model.run_with_cache(batch.clean)
        final = cache[f"blocks.{len(layers) - 1}.hook_resid_post"][rows, batch.last]
        unembed = hf.lm_head.weight[batch.correct] - hf.lm_head.weight[batch.incorrect]
        project = (1 + hf.model.norm.weight) * unembed / rms(final)  # [batch, d_model]
        for layer, block in enumerate(layers):
            z = cache[f"blocks.{layer}.attn.hook_z"][rows, batch.last]  # [batch, head, d_head]
            w_o = block.self_attn.o_proj.weight.T.reshape(n_heads, d_head, -1)
            parts = torch.einsum("bhd,hdm->hbm", z, w_o)
            pre_norm = cache[f"blocks.{layer}.ln1_post.hook_in"][rows, batch.last]
            group = n_heads // hf_cfg.num_key_value_heads
            b_v = block.self_attn.v_proj.bias.reshape(-1, d_head).repeat_interleave(group, 0)
            bias = block.self_attn.o_proj.bias + torch.einsum("hd,hdm->m", b_v, w_o)
            assert (parts.sum(0) + bias - pre_norm).abs().max() <= 1e-5
            gain = 1 + block.post_attention_layernorm.weight
            writes = gain * parts / rms(pre_norm)  # [head, batch, d_model]
            real = cache[f"blocks.{layer}.hook_attn_out"][rows, batch.last]
            assert (writes.sum(0) + gain * bias / rms(pre_norm) - real).abs().max() <= 1e-5
            want = (writes * project).sum(-1)  # [head, batch]
            assert (ours.heads[layer] - want).abs().max() <= TOL, layer
            mlp = cache[f"blocks.{layer}.mlp.hook_out"][rows, batch.last]
            mlp_write = (1 + block.post_feedforward_layernorm.weight) * mlp / rms(mlp)
            assert ours.mlps is not None
            assert (ours.mlps[layer] - (mlp_write * project).sum(-1)).abs().max() <= TOL
        embed = hf.model.embed_tokens.weight[batch.clean[rows, batch.last]]
        embed = embed * torch.tensor(hf_cfg.hidden_size**0.5, dtype=embed.dtype)
        assert (ours.embed - (embed * project).sum(-1)).abs().max() <= TOL
    assert ours.pos_embed is None
    assert ours.heads.abs().max() > 0.1  # not a vacuous comparison


def test_components_sum_to_the_logit_diff_without_post_norms(arch_model) -> None:  # noqa: F811
    batch = pair_batch(n_pairs=3, n_pos=6)
    ours = direct_logit_attribution(arch_model, batch)
    logits = arch_model(batch.clean)[:, -1]
    assert (dla_total(ours) - logit_diff(logits, batch)).abs().max() <= TOL


def test_gpt2_biases_count_in_the_sum(tmp_path) -> None:
    from transformers import GPT2Config

    cfg = GPT2Config(vocab_size=F.VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                     bos_token_id=0, eos_token_id=0, pad_token_id=1)  # fmt: skip
    model, _ = _boot_with_biases(cfg, tmp_path / "gpt2b")
    batch = ragged(seed=2)
    ours = direct_logit_attribution(model, batch)
    logits = last_logits(model, batch)[0]
    assert ours.biases.abs().min() > 1e-3
    assert (dla_total(ours) - logit_diff(logits, batch)).abs().max() <= TOL


def test_a_post_norm_that_dla_cannot_split_is_refused_in_one_line(gemma2, monkeypatch) -> None:
    model, _ = gemma2
    monkeypatch.setattr(dla_module, "_b_O", lambda model, layer: None)  # b_O dropped: mismatch
    with pytest.raises(ValueError, match=r"blocks\.0's post-attention norm .* miss its output"):
        direct_logit_attribution(model, pair_batch())
    monkeypatch.undo()
    # a LayerNorm post-norm, and an RMS one with a bias: not a per-dimension gain over the RMS
    layer_norm = SimpleNamespace(uses_rms_norm=False, weight=torch.ones(4), original_component=None)
    biased = SimpleNamespace(uses_rms_norm=True, weight=torch.ones(4),
                             original_component=SimpleNamespace(bias=torch.zeros(4)))  # fmt: skip
    for norm in (layer_norm, biased):
        blocks = [model.blocks[0], SimpleNamespace(ln1_post=norm)]
        fake = SimpleNamespace(cfg=SimpleNamespace(architecture="PostLN"), blocks=blocks)
        with pytest.raises(ValueError, match=r"^PostLN: .*blocks\.1's ln1_post is not one") as info:
            dla_module.post_norm_gain(fake, 1)  # type: ignore[arg-type]
        assert "\n" not in str(info.value)
    assert torch.equal(dla_module.post_norm_gain(model, 0), 1 + model.blocks[0].ln1_post.weight)


def test_explore_dla_and_lens_on_gemma2(gemma2) -> None:
    """Explore's per-head DLA goes through the post-attention norms as ``direct_logit_attribution``
    does: its components sum to the target's pre-cap logit (raw ``z @ W_O`` would not), each
    head equals the batch DLA's for a one-prompt batch, and its lens ends at the capped logits."""
    from analysis.explore import explore

    model, _ = gemma2
    tokens = ragged(seed=3, lengths=(9,)).clean[0].tolist()
    found = explore(model, tokens, next_id=5)
    batch = pair_batch_from_tokens([tokens], [tokens], [5], [6])
    logits, pre = last_logits(model, batch)
    for target in found.targets:
        total = found.dla[target.role].sum() + sum(found.components[target.role].values())
        assert abs(float(total) - float(pre[0, target.id])) <= TOL, target.role
        assert abs(found.components[target.role]["biases"]) > 1e-3
        assert abs(found.lens[target.role][-1]["logit"] - float(logits[0, target.id])) <= TOL
    # the batch DLA of (5 vs 6) is explore's DLA of 5 minus explore's DLA of 6
    want = direct_logit_attribution(model, batch)
    diff = found.dla["next"] - explore(model, tokens, next_id=6).dla["next"]
    assert (want.heads[..., 0] - diff).abs().max() <= TOL
    assert want.heads.abs().max() > 0.1
