"""The model shapes the benches boot offline: TransformerLens-native GPT-2-style blocks with
random weights (``TransformerBridge.boot_native``), so no weights are downloaded.

Run from the benches as ``from shapes import boot_gpt2_style`` (``python bench/<name>.py`` puts
this folder on the path).
"""

from __future__ import annotations

from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

# GPT-2 small: 12 layers × 12 heads, d_model 768, MLP 3072, vocabulary 50257
GPT2_SMALL = {"n_layers": 12, "n_heads": 12, "d_model": 768, "d_mlp": 3072, "d_vocab": 50257}


def boot_gpt2_style(shape: dict, device: str = "cpu", n_ctx: int = 256) -> TransformerBridge:
    """A random-weight GPT-2-style model of ``shape`` (the ``GPT2_SMALL`` keys; others ignored)."""
    cfg = TransformerBridgeConfig(
        d_model=shape["d_model"], d_head=shape["d_model"] // shape["n_heads"],
        n_heads=shape["n_heads"], n_layers=shape["n_layers"], d_mlp=shape["d_mlp"],
        n_ctx=n_ctx, d_vocab=shape["d_vocab"], act_fn="gelu_new", normalization_type="LN",
        seed=0, device=device,
    )  # fmt: skip
    model = TransformerBridge.boot_native(cfg)
    model.enable_compatibility_mode()
    return model
