"""Saving and loading zoo models: config JSON + safetensors + tokenizer folder.

A zoo model is a TransformerLens-native transformer (``TransformerBridge.boot_native``). Training
runs on the bare ``NativeModel`` (no hooks, faster); its weights are saved under the bridge's own
state-dict names so loading is ``boot_native`` + ``load_state_dict(strict=True)``: every tensor is
replaced, so the loaded model is exactly the trained one whatever the random init was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from analysis.zoo import CONFIG_FILE, TOKENIZER_DIR, WEIGHTS_FILE
from analysis.zoo.tokenizer import load_char_tokenizer

FORMAT = "headlab-zoo/1"

# NativeModel submodule name -> TransformerBridge state-dict prefix.
_NATIVE_TO_BRIDGE = {
    "tok_embed": "embed",
    "pos": "pos_embed",
    "layers": "blocks",
    "ln_out": "ln_final",
    "head": "unembed",
}

_MLP_NATIVE_TO_BRIDGE = {".mlp.fc_in.": ".mlp.in.", ".mlp.fc_out.": ".mlp.out."}


def bridge_state_dict(
    native_state: dict[str, torch.Tensor], d_vocab: int
) -> dict[str, torch.Tensor]:
    """Rename a NativeModel state dict to the bridge's names (plus the bridge's zero unembed
    bias)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in native_state.items():
        head, rest = key.split(".", 1)
        for native, bridge in _MLP_NATIVE_TO_BRIDGE.items():
            rest = rest.replace(native, bridge)
        out[f"{_NATIVE_TO_BRIDGE[head]}.{rest}"] = value.detach().to(torch.float32).contiguous()
    out.setdefault("unembed.bias", torch.zeros(d_vocab))
    return out


def save_zoo_model(
    folder: Path,
    *,
    name: str,
    tl_config: dict[str, Any],
    alphabet: str,
    state: dict[str, torch.Tensor],
    training: dict[str, Any],
) -> None:
    """Write config.json and model.safetensors (the tokenizer folder is written by the builder)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "format": FORMAT,
        "name": name,
        "tl_config": tl_config,
        "alphabet": alphabet,
        "training": training,
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT, "name": name})


def read_zoo_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: build the zoo model with `headlab models build-demo`"
        )
    config = json.loads(path.read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"{path}: format {config.get('format')!r} is not {FORMAT!r}")
    return config


def load_zoo_bridge(
    folder: Path, *, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> TransformerBridge:
    """Boot a zoo model from its folder with its saved weights loaded exactly."""
    config = read_zoo_config(folder)
    tokenizer = load_char_tokenizer(folder / TOKENIZER_DIR)
    cfg = TransformerBridgeConfig(**config["tl_config"])
    bridge = TransformerBridge.boot_native(
        cfg, tokenizer=tokenizer, device=device, dtype=dtype, model_name=f"zoo:{config['name']}"
    )
    state = load_file(str(folder / WEIGHTS_FILE))
    bridge.load_state_dict(state, strict=True)
    return bridge
