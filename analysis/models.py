"""Loading models named by a spec string, and the architecture facts shown to users.

``load_model("zoo:induction-2l")`` boots a TransformerLens-native zoo model with its saved weights
(``TransformerBridge.boot_native``); ``load_model("hf:<hub id or folder>")`` boots a HuggingFace
checkpoint (``TransformerBridge.boot_transformers``). Both come back with
``enable_compatibility_mode()`` applied (LayerNorm folded, writing weights and unembedding
centred: HookedTransformer-equivalent numbers, legacy hook names) and a tokenizer attached.

Convention: compatibility mode centres the unembedding, which shifts every logit at a position by
the same constant. Logits therefore equal the raw HF model's only up to that shift;
``log_softmax`` of the logits (and every logit difference) is unchanged. Compare those.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge

from analysis.model_specs import ModelSpec, ModelSpecError, parse_model_spec

log = logging.getLogger(__name__)

__all__ = [
    "ModelLoadError",
    "ModelSpec",
    "ModelSpecError",
    "load_model",
    "model_facts",
    "parse_model_spec",
    "resolve_device",
    "resolve_dtype",
    "sandwich_norms",
]

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DEVICES = ("auto", "cpu", "cuda", "mps")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


class ModelLoadError(RuntimeError):
    """A well-formed spec could not be loaded. The message says why and what to do."""


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; other values pass through checked."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    base = device.split(":", 1)[0]
    if base not in DEVICES:
        raise ModelSpecError(f"device {device!r} is not one of {', '.join(DEVICES)} (or cuda:N)")
    if base == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available; use cpu")
    return device


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ModelSpecError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _hub_offline() -> bool:
    flags = (os.environ.get(k, "") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(flag.strip().lower() in ("1", "true", "yes", "on") for flag in flags)


def _offline_message(spec: ModelSpec, reason: str) -> str:
    return (
        f"{spec.spec}: cannot fetch {spec.target!r} from the HuggingFace hub ({reason}). "
        "Download it on a machine with access, save it with `model.save_pretrained(folder)` and "
        "`tokenizer.save_pretrained(folder)`, then use hf:/path/to/folder"
    )


def _load_zoo(spec: ModelSpec, device: str, dtype: torch.dtype) -> TransformerBridge:
    from analysis.zoo.checkpoint import load_zoo_bridge

    assert spec.folder is not None
    return load_zoo_bridge(spec.folder, device=device, dtype=dtype)


def _load_hf(
    spec: ModelSpec, device: str | None, dtype: torch.dtype, device_map: Any
) -> TransformerBridge:
    if spec.is_local:
        folder = Path(spec.target)
        if not any((folder / name).exists() for name in TOKENIZER_FILES):
            raise ModelLoadError(
                f"{spec.spec}: {folder} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); "
                "save one there with `tokenizer.save_pretrained(folder)`"
            )
    elif _hub_offline():
        raise ModelLoadError(_offline_message(spec, "HF_HUB_OFFLINE is set"))
    kwargs: dict[str, Any] = {"dtype": dtype}
    if device_map is not None:
        kwargs["device_map"] = device_map
    else:
        kwargs["device"] = device
    try:
        return TransformerBridge.boot_transformers(spec.target, **kwargs)
    except OSError as exc:  # hub unreachable / repo missing / files missing
        if spec.is_local:
            raise ModelLoadError(f"{spec.spec}: could not load the folder: {exc}") from exc
        raise ModelLoadError(_offline_message(spec, str(exc).splitlines()[0])) from exc


def load_model(
    spec: str | ModelSpec,
    *,
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
    device_map: str | dict[str, Any] | None = None,
) -> TransformerBridge:
    """Load a model by spec with compatibility mode enabled and its tokenizer attached.

    ``device="auto"`` picks cuda when available. ``device_map`` (HF style: "auto", "balanced",
    or a dict) spreads an HF model over several devices and replaces ``device``; zoo models are
    tiny and ignore it.
    """
    parsed = spec if isinstance(spec, ModelSpec) else parse_model_spec(spec)
    torch_dtype = resolve_dtype(dtype)
    resolved = resolve_device(device)
    if parsed.kind == "zoo":
        model = _load_zoo(parsed, resolved, torch_dtype)
    else:
        model = _load_hf(parsed, resolved, torch_dtype, device_map)
    model.enable_compatibility_mode(disable_warnings=True)
    model.eval()
    model.headlab_spec = parsed.spec  # type: ignore[attr-defined]  # who this model is
    log.info("loaded %s on %s (%s)", parsed.spec, resolved, torch_dtype)
    return model


def sandwich_norms(model: TransformerBridge) -> bool:
    """Whether the blocks normalise the attention and MLP outputs before adding them to the
    residual stream (Gemma-2/3's ``post_attention_layernorm`` / ``post_feedforward_layernorm``,
    the bridge's ``ln1_post`` / ``ln2_post``): a head's write is then not ``z @ W_O``."""
    if getattr(model.cfg, "use_normalization_before_and_after", False):
        return True
    blocks = getattr(model, "blocks", None) or []
    return any(hasattr(b, "ln1_post") or hasattr(b, "ln2_post") for b in blocks)


def _soft_cap(value: Any) -> float | None:
    return float(value) if value is not None and float(value) > 0 else None


def logit_soft_cap(cfg: Any) -> float | None:
    """The final-logit soft-cap (Gemma-2's ``final_logit_softcapping``), None without one."""
    return _soft_cap(getattr(cfg, "output_logits_soft_cap", None))


def model_facts(model: TransformerBridge) -> dict[str, Any]:
    """Architecture facts for the store and the UI (plain JSON values)."""
    cfg = model.cfg
    n_heads = int(cfg.n_heads)
    n_kv: int = getattr(cfg, "n_key_value_heads", None) or n_heads
    attn_only = bool(getattr(cfg, "attn_only", False))
    tokenizer = getattr(model, "tokenizer", None)
    return {
        "architecture": str(getattr(cfg, "architecture", None) or "unknown"),
        "n_layers": int(cfg.n_layers),
        "n_heads": n_heads,
        "n_kv_heads": int(n_kv),
        "grouped_query_attention": int(n_kv) < n_heads,
        "d_model": int(cfg.d_model),
        "d_head": int(cfg.d_head),
        "d_mlp": None if attn_only or cfg.d_mlp is None else int(cfg.d_mlp),
        "attn_only": attn_only,
        "d_vocab": int(cfg.d_vocab),
        "n_ctx": int(cfg.n_ctx),
        "positional_embedding": str(cfg.positional_embedding_type),
        "normalization": str(cfg.normalization_type),
        "act_fn": None if attn_only else getattr(cfg, "act_fn", None),
        "gated_mlp": bool(getattr(cfg, "gated_mlp", False)),
        "parallel_attn_mlp": bool(getattr(cfg, "parallel_attn_mlp", False)),
        "post_norms": sandwich_norms(model),
        "attn_soft_cap": _soft_cap(getattr(cfg, "attn_scores_soft_cap", None)),
        "logit_soft_cap": logit_soft_cap(cfg),
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "dtype": str(cfg.dtype).removeprefix("torch."),
        "tokenizer_vocab": None if tokenizer is None else int(len(tokenizer)),
        "prepends_bos": bool(getattr(cfg, "default_prepend_bos", True)),
    }
