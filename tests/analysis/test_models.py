"""Model specs and loading: zoo and local HF folders (GPT-2 and Llama/GQA), offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from analysis.model_specs import ModelSpecError, parse_model_spec
from analysis.models import ModelLoadError, load_model, model_facts, resolve_device
from analysis.zoo import zoo_names
from analysis.zoo.tokenizer import build_char_tokenizer

VOCAB_CHARS = "abcdefghijklmnopqrstuvwxyz .,"


def make_hf_folder(folder: Path, arch: str) -> Path:
    """A tiny random-weight HF checkpoint + char tokenizer saved with save_pretrained."""
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    vocab = len(VOCAB_CHARS) + 3
    if arch == "gpt2":
        cfg = GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=64, vocab_size=vocab)
    else:  # Llama with grouped-query attention: 4 query heads share 2 key/value heads
        cfg = LlamaConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=vocab,
            max_position_embeddings=64,
        )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(folder)
    build_char_tokenizer(VOCAB_CHARS, folder)
    return folder


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def hf_folder(request, tmp_path_factory) -> Path:
    return make_hf_folder(tmp_path_factory.mktemp(request.param), request.param)


def test_malformed_specs_give_examples():
    for bad in ("", "gpt2", "foo:bar", "zoo:", "hf:"):
        with pytest.raises(ModelSpecError, match="zoo:<name> or hf:"):
            parse_model_spec(bad)


def test_unknown_zoo_name_lists_the_zoo():
    with pytest.raises(ModelSpecError) as info:
        parse_model_spec("zoo:nope")
    for name in zoo_names():
        assert name in str(info.value)


def test_missing_folder_and_folder_without_config(tmp_path):
    with pytest.raises(ModelSpecError, match="no such folder"):
        parse_model_spec(f"hf:{tmp_path}/absent")
    with pytest.raises(ModelSpecError, match="no config.json"):
        parse_model_spec(f"hf:{tmp_path}")
    with pytest.raises(ModelSpecError, match="not a HuggingFace hub id"):
        parse_model_spec("hf:bad id with spaces")


def test_hub_name_offline_suggests_local_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = parse_model_spec("hf:EleutherAI/pythia-70m")
    assert not spec.is_local
    with pytest.raises(ModelLoadError, match="hf:/path/to/folder"):
        load_model(spec)


def test_folder_without_tokenizer_is_refused(tmp_path):
    from transformers import AutoModelForCausalLM, GPT2Config

    cfg = GPT2Config(n_embd=16, n_layer=1, n_head=2, n_positions=8, vocab_size=10)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="tokenizer"):
        load_model(f"hf:{tmp_path}")


def test_device_and_dtype_are_checked():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ModelSpecError, match="device"):
        resolve_device("tpu")
    with pytest.raises(ModelSpecError, match="dtype"):
        load_model("zoo:induction-2l", dtype="float64")


def test_hf_folder_logits_match_hf_model(hf_folder):
    """Compatibility mode centres the unembedding, which shifts all logits at a position by one
    constant; so we compare log-softmax (equivalently, every logit difference)."""
    from transformers import AutoModelForCausalLM

    bridge = load_model(f"hf:{hf_folder}")
    hf = AutoModelForCausalLM.from_pretrained(hf_folder, attn_implementation="eager").eval()
    tokens = bridge.to_tokens(["hello world, again", "abc abc abc abc x."])
    with torch.no_grad():
        ours = bridge(tokens).log_softmax(-1)
        theirs = hf(tokens).logits.log_softmax(-1)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_hf_facts(hf_folder):
    facts = model_facts(load_model(f"hf:{hf_folder}"))
    assert facts["n_layers"] == 2 and facts["n_heads"] == 4 and facts["d_model"] == 64
    if "llama" in hf_folder.name:
        assert facts["n_kv_heads"] == 2 and facts["grouped_query_attention"]
        assert facts["positional_embedding"] == "rotary" and facts["normalization"] == "RMS"
    else:
        assert facts["n_kv_heads"] == 4 and not facts["grouped_query_attention"]
        assert facts["positional_embedding"] == "standard" and facts["normalization"] == "LN"


def test_zoo_facts():
    facts = model_facts(load_model("zoo:induction-2l"))
    assert facts == facts | {
        "n_layers": 2,
        "n_heads": 4,
        "d_model": 64,
        "d_head": 16,
        "attn_only": True,
        "d_mlp": None,
        "n_ctx": 64,
        "architecture": "TransformerLensNative",
    }


@pytest.mark.parametrize("device_map", ["auto", "balanced"])
def test_device_map_loads_the_same_model(hf_folder, device_map):
    """The multi-GPU path's plumbing, on this machine's one device: a run config's device_map
    reaches the HF loader, and the model it gives computes what the single-device one does."""
    from analysis.configs import parse_run_config
    from analysis.worker import ModelCache

    spec = f"hf:{hf_folder}"
    config = parse_run_config({"kind": "heads", "model": spec, "device_map": device_map})
    cache = ModelCache()
    split = cache.get(config)
    assert cache.get(config) is split and cache.loads == 1
    single = load_model(spec)
    tokens = single.to_tokens("ab cd, ef.")
    with torch.no_grad():
        torch.testing.assert_close(split(tokens), single(tokens), rtol=0, atol=0)
    other = parse_run_config({"kind": "heads", "model": spec})
    assert cache.get(other) is not split and cache.loads == 2  # a different key: reloaded


def test_device_map_is_refused_for_zoo_models():
    from analysis.configs import ConfigError, parse_run_config

    with pytest.raises(ConfigError, match="zoo models are tiny.*drop --device-map"):
        parse_run_config({"kind": "heads", "model": "zoo:induction-2l", "device_map": "auto"})
    with pytest.raises(ConfigError, match="device_map"):
        parse_run_config({"kind": "heads", "model": "hf:gpt2", "device_map": "sequential"})
