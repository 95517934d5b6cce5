"""Run a model from layer L on cached inputs, reading logits only at the metric's positions.

TransformerBridge 3.9 has no ``start_at_layer``. ``BlockReplay`` gets the same effect from the
model's own modules: one forward of the target prompts records each block's call arguments
(the residual stream entering the block, plus whatever the architecture passes along —
attention masks, rotary cos/sin, position ids). A patched run from layer L then feeds the
recorded residual ``resid_pre[L]`` to ``blocks[L:]`` (each called with its recorded
arguments, batch-stacked to the number of copies), applies ``ln_final``, ``unembed`` and the
architecture's logit transform (``final_logits``: Gemma-2's final soft-capping) to the last
real position of each prompt only, and never recomputes layers before L or the full
vocabulary projection at positions the metric does not read. The same forward keeps each
layer's k, v and z (``attention_cache``) for ``suffix.SuffixReplay``. Hooks registered with
``model.hooks`` fire inside the blocks as in a normal forward.

Support is detected, not assumed: the recording must find a ``blocks`` list, and replaying the
last layer must reproduce the model's own last-position logits (max abs diff ≤ 1e-4).
Otherwise ``supported`` is False and callers fall back to full forwards of the stacked batch.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int

from analysis import hooks
from analysis.metrics import last_logits

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

log = logging.getLogger(__name__)
REPLAY_TOLERANCE = 1e-4
# Attention activations the recording keeps (the suffix replay reads prefix keys/values and z).
ATTENTION_CACHE = ("k", "v", "z")


def _is_kv_cache(value: Any) -> bool:
    try:
        from transformers.cache_utils import Cache
    except ImportError:  # pragma: no cover - transformers is a TransformerLens dependency
        return False
    return isinstance(value, Cache)


def stack_copies(value: Any, n_batch: int, copies: int) -> Any:
    """Repeat batch-leading tensors ``copies`` times; drop KV caches; recurse into tuples."""
    if _is_kv_cache(value):
        return None
    if isinstance(value, torch.Tensor):
        if value.dim() > 0 and value.shape[0] == n_batch and copies > 1:
            return value.repeat(copies, *([1] * (value.dim() - 1)))
        return value
    if isinstance(value, tuple):
        return tuple(stack_copies(v, n_batch, copies) for v in value)
    return value


class BlockReplay:
    """Recorded block inputs of one target run, replayable from any layer."""

    def __init__(
        self, model: TransformerBridge, tokens: Int[torch.Tensor, "batch pos"], last: torch.Tensor
    ):
        self.model = model
        self.tokens = tokens
        self.last = last
        self.n_batch = int(tokens.shape[0])
        self.calls: dict[int, tuple[tuple, dict]] = {}
        self.supported = False
        self.reason = ""
        self._suffix: Any = None
        self.attention_cache: dict[str, torch.Tensor] = {}  # hook name -> this run's k/v/z
        blocks = getattr(model, "blocks", None)
        if blocks is None or len(blocks) != int(model.cfg.n_layers):
            self.reason = "the model has no blocks list to replay"
            return
        with torch.no_grad():
            logits = self._record(blocks)
        self.full_last = last_logits(logits, last)
        self.supported, self.reason = self._self_check()
        if not self.supported:
            log.info("layer replay unavailable (%s); using full forwards", self.reason)

    def _record(self, blocks: Any) -> torch.Tensor:
        handles = []
        for layer, block in enumerate(blocks):

            def pre(module: Any, args: tuple, kwargs: dict, layer: int = layer) -> None:
                self.calls[layer] = (args, dict(kwargs))

            handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
        names = {hooks.site(kind, i).name for i in range(len(blocks)) for kind in ATTENTION_CACHE}
        try:
            logits, cache = self.model.run_with_cache(
                self.tokens, names_filter=lambda name: name in names
            )
            self.attention_cache = {name: cache[name] for name in names if name in cache}
            return logits
        finally:
            for h in handles:
                h.remove()

    def _self_check(self) -> tuple[bool, str]:
        n = int(self.model.cfg.n_layers)
        if len(self.calls) != n or not all(
            self.calls[i][0] and isinstance(self.calls[i][0][0], torch.Tensor) for i in range(n)
        ):
            return False, "blocks were not called with the residual stream as first argument"
        try:
            with torch.no_grad():
                out = self.run_from(n - 1, copies=1)
        except Exception as exc:  # any failure means: do not replay this architecture
            return False, f"replaying a block failed: {exc!r}"
        err = (out - self.full_last).abs().max().item()
        if not err <= REPLAY_TOLERANCE:
            return False, f"replayed logits differ from the model's by {err:.2e}"
        return True, "ok"

    def suffix(self) -> Any:
        """The prefix-skipping replay over the same recording (built once, on first use)."""
        if self._suffix is None:
            from analysis.patching.suffix import SuffixReplay

            self._suffix = SuffixReplay(self.model, self)
        return self._suffix

    def resid_pre(self, layer: int) -> Float[torch.Tensor, "batch pos d_model"]:
        return self.calls[layer][0][0]

    def run_from(
        self,
        layer: int,
        copies: int,
        resid: Float[torch.Tensor, "rows pos d_model"] | None = None,
    ) -> Float[torch.Tensor, "rows d_vocab"]:
        """Run blocks ``layer..`` on ``copies`` stacked copies; logits at the last positions."""
        x = (
            resid
            if resid is not None
            else stack_copies(self.resid_pre(layer), self.n_batch, copies)
        )
        for i in range(layer, int(self.model.cfg.n_layers)):
            args, kwargs = self.calls[i]
            rest = tuple(stack_copies(a, self.n_batch, copies) for a in args[1:])
            kw = {k: stack_copies(v, self.n_batch, copies) for k, v in kwargs.items()}
            if "use_cache" in kw:
                kw["use_cache"] = False
            out = self.model.blocks[i](x, *rest, **kw)
            x = out[0] if isinstance(out, tuple) else out
        rows = torch.arange(x.shape[0], device=x.device)
        x_last = x[rows, self.last.to(x.device).repeat(copies)][:, None, :]
        return final_logits(self.model, x_last)[:, 0, :]


def final_logits(
    model: TransformerBridge, x: Float[torch.Tensor, "rows pos d_model"]
) -> Float[torch.Tensor, "rows pos d_vocab"]:
    """``ln_final`` + ``unembed`` + the architecture's transform of the logits after the
    unembedding (Gemma-2's final soft-capping, Granite's scaling), as the model's forward."""
    logits = model.unembed(model.ln_final(x))
    transform = getattr(getattr(model, "adapter", None), "apply_output_logits_transform", None)
    return transform(logits) if callable(transform) else logits


def full_forward_last(
    model: TransformerBridge, tokens: torch.Tensor, last: torch.Tensor, copies: int
) -> Float[torch.Tensor, "rows d_vocab"]:
    """Fallback: a full forward of ``copies`` stacked copies, logits at the last positions."""
    stacked = tokens.repeat(copies, 1)
    logits = model(stacked)
    return last_logits(logits, last.repeat(copies))
