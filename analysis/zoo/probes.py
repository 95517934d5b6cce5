"""Interventions used to establish a zoo model's mechanism (and to test it).

All numbers are effects on a task metric (lower-is-better loss on the positions the task
scores) when one component or one path is ablated:

- ``head_ablation``: mean-ablate one head's output (``hook_z`` replaced by its mean over batch and
  positions), for every head. A large loss increase means the head is needed.
- ``path_ablation``: ablate a *sender* (one head's ``hook_z``, mean-ablated; for ``"input"``
  the token embeddings, resampled from another row; for ``"input.pos"`` the positional
  embeddings, mean-ablated) along the direct path into one *receiver* channel only (the q, k
  or v of one later head, or a later MLP), by path patching. Everything
  else sees the sender unchanged, so the effect is that of the edge
  ``sender -> receiver<channel>`` alone.
- ``mlp_ablation``: mean-ablate one MLP's output (``hook_mlp_out``).

Interventions are scoped with ``model.hooks(...)``: no hook outlives its call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from transformer_lens.model_bridge import TransformerBridge

from analysis.hooks import HookSite, site

Metric = Callable[[Float[torch.Tensor, "batch pos d_vocab"]], torch.Tensor]


def _mean_ablate(acts: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    return acts.mean(dim=dims, keepdim=True).expand_as(acts)


@torch.no_grad()
def run_metric(
    model: TransformerBridge,
    tokens: Int[torch.Tensor, "batch pos"],
    metric: Metric,
    fwd_hooks: list | None = None,
) -> float:
    with model.hooks(fwd_hooks=fwd_hooks or []):
        return float(metric(model(tokens)))


@torch.no_grad()
def head_ablation(
    model: TransformerBridge, tokens: Int[torch.Tensor, "batch pos"], metric: Metric
) -> Float[torch.Tensor, "layer head"]:
    """Metric change when each head's ``hook_z`` is replaced by its batch/position mean."""
    base = run_metric(model, tokens, metric)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):

            def hook(z: torch.Tensor, hook=None, head=head) -> torch.Tensor:
                z = z.clone()
                z[:, :, head] = _mean_ablate(z[:, :, head], (0, 1))
                return z

            hooks = [(HookSite("z", layer).name, hook)]
            out[layer, head] = run_metric(model, tokens, metric, hooks) - base
    return out


@torch.no_grad()
def mlp_ablation(
    model: TransformerBridge, tokens: Int[torch.Tensor, "batch pos"], metric: Metric
) -> Float[torch.Tensor, " layer"]:
    """Metric change when each MLP's output is replaced by its batch/position mean."""
    base = run_metric(model, tokens, metric)
    out = torch.zeros(model.cfg.n_layers)
    for layer in range(model.cfg.n_layers):
        hooks = [(HookSite("mlp_out", layer).name, lambda x, hook=None: _mean_ablate(x, (0, 1)))]
        out[layer] = run_metric(model, tokens, metric, hooks) - base
    return out


def _ablate_sender_hooks(sender: str) -> list:
    """Hooks that ablate the sender: one head's z (mean over batch and positions), or for
    "input" the token embeddings (resampled: each row gets the next row's, so the residual stays
    in distribution; positional embeddings are the same in every row and stay), or for
    "input.pos" the positional embeddings (mean over positions)."""
    if sender == "input":
        return [(HookSite("embed").name, lambda x, hook=None: x.roll(1, dims=0))]
    if sender == "input.pos":
        return [(HookSite("pos_embed").name, lambda x, hook=None: _mean_ablate(x, (1,)))]
    layer, head = (int(part[1:]) for part in sender.split("."))

    def ablate_head(z: torch.Tensor, hook=None) -> torch.Tensor:
        z = z.clone()
        z[:, :, head] = _mean_ablate(z[:, :, head], (0, 1))
        return z

    return [(HookSite("z", layer).name, ablate_head)]


def hooks_between(model: TransformerBridge, receiver_layer: int, channel: str) -> list[str]:
    """Hook names of every component that runs before the receiver: heads of earlier layers
    (and of the receiver's own layer when the receiver is its MLP), MLPs of earlier layers."""
    heads_upto = receiver_layer + 1 if channel == "mlp" else receiver_layer
    names = [HookSite("z", layer).name for layer in range(heads_upto)]
    if not model.cfg.attn_only:
        names += [HookSite("mlp_out", layer).name for layer in range(receiver_layer)]
    return names


def freeze_hooks(
    model: TransformerBridge,
    clean: dict[str, torch.Tensor],
    sender: str,
    receiver_layer: int,
    channel: str,
) -> list:
    """Hooks that pin every component between sender and receiver to its clean value, so only
    the direct sender -> receiver path carries the ablation. The sender's own layer keeps the
    sender's (ablated) output and pins the other heads."""
    names = hooks_between(model, receiver_layer, channel)
    if sender.startswith("input"):
        return [(n, _replace_with(clean[n])) for n in names]
    layer, head = (int(part[1:]) for part in sender.split("."))
    own = HookSite("z", layer).name

    def others_clean(z: torch.Tensor, hook=None) -> torch.Tensor:
        keep = clean[own].clone()
        keep[:, :, head] = z[:, :, head]
        return keep

    # components before the sender are unaffected by it, so pinning them to clean is a no-op
    others = [n for n in names if n != own]
    return [*((n, _replace_with(clean[n])) for n in others), (own, others_clean)]


def _replace_with(value: torch.Tensor):
    return lambda x, hook=None: value


def _receiver_sites(receiver: tuple[int, int | None], channel: str) -> list[str]:
    layer = receiver[0]
    if channel == "mlp":
        return [HookSite("mlp_out", layer).name]
    parts = channel.split("+")
    if not parts or any(p not in ("q", "k", "v") for p in parts):
        raise ValueError(f"channel {channel!r}: use q, k, v, a '+' join of them, or mlp")
    return [site(p, layer).name for p in parts]


def cache_hooks(names: list[str], store: dict[str, torch.Tensor]) -> list:
    def keep(name: str):
        def hook(x: torch.Tensor, hook=None) -> torch.Tensor:
            store[name] = x.detach().clone()
            return x

        return hook

    return [(n, keep(n)) for n in names]


def position_patch_hook(value: torch.Tensor, head: int | None, position: int | None):
    def hook(x: torch.Tensor, hook=None) -> torch.Tensor:
        x = x.clone()
        pos = slice(None) if position is None else position
        if head is None:
            x[:, pos] = value[:, pos]
        else:
            x[:, pos, head] = value[:, pos, head]
        return x

    return hook


@torch.no_grad()
def path_ablation(
    model: TransformerBridge,
    tokens: Int[torch.Tensor, "batch pos"],
    metric: Metric,
    sender: str,
    receiver: tuple[int, int | None],
    channel: str,
    position: int | None = None,
) -> float:
    """Metric change when ``sender`` ("input" or "a{L}.h{H}") is ablated along the direct
    path into one receiver only: ``channel`` "q", "k", "v" (or a join such as "q+k") of head
    ``receiver`` = (layer, head) — head None means every head of that layer — or ``channel``
    "mlp" for the MLP of layer ``receiver[0]``.

    Path patching in three passes: (1) clean run, caching every head's z and MLP output;
    (2) run with the sender ablated and everything between sender and receiver pinned to clean,
    caching the receiver's q/k/v (or MLP output); (3) clean run with only that receiver
    activation replaced (at every position, or only at ``position``). Works on any bridge
    (no split-QKV hooks needed).
    """
    r_layer, r_head = receiver
    sites = _receiver_sites(receiver, channel)
    cache_names = hooks_between(model, r_layer, channel)
    clean: dict[str, torch.Tensor] = {}
    base = run_metric(model, tokens, metric, cache_hooks(cache_names, clean))
    counterfactual: dict[str, torch.Tensor] = {}
    hooks = _ablate_sender_hooks(sender) + freeze_hooks(model, clean, sender, r_layer, channel)
    with model.hooks(fwd_hooks=hooks + cache_hooks(sites, counterfactual)):
        model(tokens)
    patches = [
        (site, position_patch_hook(counterfactual[site], r_head, position)) for site in sites
    ]
    return run_metric(model, tokens, metric, patches) - base
