from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from analysis.sae.load import (
    SAELoadError,
    hook_z_layer,
    load_sae_folder,
    load_sae_pretrained,
    sae_layer,
)
from tests.analysis.heads_fixtures import native_attn_only


def test_training_records_curves_and_learns(trained):
    assert set(trained.saes) == {0, 1}
    for layer, t in trained.saes.items():
        curve = t.curve.as_dict()
        n = len(curve["step"])
        assert n >= 5
        assert all(len(curve[k]) == n for k in ("mse", "l0", "dead_fraction", "explained_variance"))
        assert curve["l0"][-1] <= 4.0  # topk, k=4
        assert curve["mse"][-1] < curve["mse"][0]
        assert curve["explained_variance"][-1] > curve["explained_variance"][0]
        assert sae_layer(t.sae) == layer
    assert trained.tokens == 48 * 512


def test_saved_sae_is_sae_lens_format_and_reloads_exactly(trained, model, eval_tokens):
    t = trained.saes[1]
    cfg = json.loads((t.folder / "cfg.json").read_text())
    assert cfg["architecture"] == "topk"
    assert cfg["reshape_activations"] == "hook_z"
    assert cfg["metadata"]["hook_name"] == "blocks.1.attn.hook_z"
    assert cfg["metadata"]["model_name"] == "test:random"
    assert set(load_file(t.folder / "sae_weights.safetensors")) >= {
        "W_enc",
        "W_dec",
        "b_enc",
        "b_dec",
    }
    again = load_sae_folder(t.folder, model=model)
    x = torch.randn(50, 32)
    assert torch.equal(again.encode(x), t.sae.encode(x))
    assert torch.equal(again.decode(again.encode(x)), t.sae.decode(t.sae.encode(x)))


@pytest.mark.parametrize("architecture", ["topk", "standard"])
def test_inference_sae_computes_what_the_training_sae_did(tmp_path, model, architecture):
    from analysis.sae.train import TrainSettings, build_training_sae

    settings = TrainSettings(d_sae=16, k=2, architecture=architecture)
    sae = build_training_sae(32, 1, settings, "m", 4)
    with torch.no_grad():  # decoder norms away from 1, so folding them is exercised
        sae.W_dec.mul_(torch.rand(16, 1) + 0.5)
        sae.b_enc.add_(0.01)
    sae.save_inference_model(tmp_path / "s")
    loaded = load_sae_folder(tmp_path / "s", model=model)
    x = torch.randn(20, 32)
    # sae-lens folds TopK decoder norms into the encoder when saving: equal up to rounding
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), sae.encode(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(loaded(x), sae(x), rtol=1e-5, atol=1e-6)


def _copy(trained, tmp_path):
    folder = tmp_path / "sae"
    shutil.copytree(trained.saes[1].folder, folder)
    return folder


def test_corrupt_or_missing_files_are_refused(trained, tmp_path):
    folder = _copy(trained, tmp_path)
    (folder / "cfg.json").write_text("{not json")
    with pytest.raises(SAELoadError, match="cfg.json is not valid JSON"):
        load_sae_folder(folder)
    folder = _copy(trained, tmp_path / "b")
    (folder / "sae_weights.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(SAELoadError, match="not a readable safetensors file"):
        load_sae_folder(folder)
    (folder / "sae_weights.safetensors").unlink()
    with pytest.raises(SAELoadError, match="has no sae_weights.safetensors"):
        load_sae_folder(folder)
    with pytest.raises(SAELoadError, match="does not exist"):
        load_sae_folder(tmp_path / "nowhere")


def test_weights_that_do_not_match_the_config_are_refused(trained, tmp_path):
    folder = _copy(trained, tmp_path)
    weights = load_file(folder / "sae_weights.safetensors")
    weights["W_enc"] = weights["W_enc"][:, :10].contiguous()
    save_file(weights, folder / "sae_weights.safetensors")
    with pytest.raises(SAELoadError, match=r"W_enc has shape \[32, 10\] but cfg.json says"):
        load_sae_folder(folder)


def test_wrong_hook_is_refused(trained, tmp_path):
    folder = _copy(trained, tmp_path)
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["metadata"]["hook_name"] = "blocks.1.hook_resid_pre"
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SAELoadError, match="reads hook 'blocks.1.hook_resid_pre'"):
        load_sae_folder(folder)


def test_sae_of_another_model_shape_is_refused(trained, tmp_path):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    wide = TransformerBridge.boot_native(
        TransformerBridgeConfig(
            d_model=32, d_head=4, n_heads=4, n_layers=2, n_ctx=16, d_vocab=31, attn_only=True
        )
    )
    with pytest.raises(SAELoadError, match=r"d_in=32 but hook_z of this model has n_heads\*d_head"):
        load_sae_folder(trained.saes[1].folder, model=wide)
    shallow = TransformerBridge.boot_native(
        TransformerBridgeConfig(
            d_model=32, d_head=8, n_heads=4, n_layers=1, n_ctx=16, d_vocab=31, attn_only=True
        )
    )
    with pytest.raises(SAELoadError, match="reads layer 1 but the model has only 1 layers"):
        load_sae_folder(trained.saes[1].folder, model=shallow)
    # the right shape loads
    assert sae_layer(load_sae_folder(trained.saes[1].folder, model=native_attn_only())) == 1


def test_hook_names_accept_the_bridge_canonical_name():
    assert hook_z_layer("blocks.3.attn.hook_z") == 3
    assert hook_z_layer("blocks.11.attn.o.hook_in") == 11
    assert hook_z_layer("blocks.3.hook_attn_out") is None
    assert hook_z_layer(None) is None


def test_pretrained_without_hub_says_so_quickly(monkeypatch):
    import time

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: connection refused
    start = time.perf_counter()
    with pytest.raises(SAELoadError, match="hub is unreachable.*local folder.*--sae-path"):
        load_sae_pretrained("gpt2-small-hook-z-kk", "blocks.0.hook_z")
    assert time.perf_counter() - start < 10


def test_pretrained_unknown_names_list_the_choices():
    with pytest.raises(SAELoadError, match="unknown sae-lens release 'nope'.*gpt2-small-hook-z-kk"):
        load_sae_pretrained("nope", "x")
    with pytest.raises(SAELoadError, match="has no SAE 'x'.*blocks.0.hook_z"):
        load_sae_pretrained("gpt2-small-hook-z-kk", "x")
