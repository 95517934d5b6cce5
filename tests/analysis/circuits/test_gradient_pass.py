"""The shared-input gradient run (``gradient_pass``) against ``EdgePatcher``'s recording run,
which builds one input per channel and lets autograd differentiate each: the same channel
inputs, channel gradients, node outputs, patterns and pattern gradients, at the clean run, with
every edge partly ablated (EAP-IG ``edges``) and with interpolated embeddings (``inputs``), on
LayerNorm/MLP, attention-only, Llama (RMSNorm, rotary, GQA) and GPT-NeoX (parallel attention
and MLP, partial rotary) models."""

from __future__ import annotations

import pytest
import torch

from analysis.circuits.gradient_pass import projected_grads
from analysis.circuits.task import build_task

from ..arch_fixtures import pair_batch
from ..heads_fixtures import neox_style
from .conftest import hf_model


@pytest.fixture(scope="module")
def llama_model():
    return hf_model("llama")


@pytest.fixture(scope="module")
def neox_model(tmp_path_factory):
    return neox_style(tmp_path_factory.mktemp("neox"))


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    scale = float(want.abs().max())
    assert scale > 0
    assert torch.allclose(got, want, rtol=1e-5, atol=2e-6 * scale), float((got - want).abs().max())


@pytest.mark.parametrize("model_name", ["mlp_model", "attn_model", "llama_model", "neox_model"])
def test_gradient_pass_equals_the_per_channel_recording(model_name, batch, request) -> None:
    if model_name == "neox_model":  # the heads fixtures' character vocabulary
        batch = pair_batch(n_pairs=3, n_pos=7)
    task = build_task(request.getfixturevalue(model_name), batch, with_gradients=True)
    everything = task.graph.dense(torch.ones(task.graph.n_edges))
    embed = 0.3 * task.clean_outputs[:, :, 0] + 0.7 * task.ablated[:, :, 0]
    cases = [
        (task.clean_gradients, task.gradient_run(ablate=0 * everything)),
        (task.gradient_run(fraction=0.4), task.gradient_run(ablate=0.4 * everything)),
        (task.gradient_run(input_override=embed),
         task.gradient_run(input_override=embed, ablate=0 * everything)),
    ]  # fmt: skip
    for fast, reference in cases:
        assert fast is not None
        assert all(g.shared for g in fast.groups)
        assert not any(g.shared and g.end - g.start > 1 for g in reference.groups)
        _close(fast.inputs, reference.inputs)
        _close(fast.input_grads, reference.input_grads)
        _close(fast.outputs, reference.outputs)
        assert fast.metric == pytest.approx(reference.metric, rel=1e-5)
        for a, b in zip(fast.pattern_grads, reference.pattern_grads, strict=True):
            _close(a, b)
        for a, b in zip(fast.patterns, reference.patterns, strict=True):
            _close(a, b)
        assert (fast.rotary is None) == (reference.rotary is None)


@pytest.mark.parametrize("norm_type", ["LN", "LNPre", "RMS", "RMSPre", None])
def test_projected_grads_are_autograd_of_the_projections(norm_type, mlp_model) -> None:
    """d metric / d x for n projections norm(x) @ w[n] + b[n] of one input, from the
    projections' gradients, equals autograd through one copy of x per projection."""
    from analysis.block_math import folded_norm

    patcher = build_task(mlp_model, _tiny_batch()).patcher
    patcher.norm_type = norm_type
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 3, 16, generator=gen), torch.randn(5, 16, 4, generator=gen)
    bias, g = torch.randn(5, 4, generator=gen), torch.randn(2, 3, 5, 4, generator=gen)
    copies = x[:, :, None].repeat(1, 1, 5, 1).requires_grad_(True)  # one input per projection
    projections = torch.einsum("bpnd,nde->bpne", folded_norm(copies, norm_type, patcher.eps), w)
    (want,) = torch.autograd.grad(projections + bias, copies, g)
    unbiased = torch.einsum("bpd,nde->bpne", folded_norm(x, norm_type, patcher.eps), w)
    got = projected_grads(patcher, x, g, w, unbiased).permute(1, 2, 0, 3)
    assert torch.allclose(got, want, atol=1e-5)


def _tiny_batch():
    from .conftest import random_batch

    return random_batch(n=2, pos=4)
