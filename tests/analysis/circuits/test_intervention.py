"""Edge patching reproduces the model, the corrupted run, and TransformerLens activation patches."""

from __future__ import annotations

import pytest
import torch

from analysis import hooks
from analysis.circuits.graph import graph_for_model
from analysis.circuits.intervention import EdgePatcher, check_decomposition

from .conftest import hf_model, random_batch


def _masks(graph, edges) -> torch.Tensor:
    per_edge = torch.zeros(graph.n_edges)
    for e in edges:
        per_edge[graph.edge_index(*e)] = 1.0
    return graph.dense(per_edge)[None]


def _check_model(model) -> None:
    graph = graph_for_model(model)
    patcher = EdgePatcher(model, graph)
    b = random_batch(n=3, pos=7)
    assert check_decomposition(patcher, b.clean) <= 1e-4
    with torch.no_grad():
        clean, corrupt = model(b.clean), patcher.run(b.corrupted)
        into_logits = [e for e in graph.edges if e[1] == "logits"]
        run = patcher.run(b.clean, corrupt.outputs, _masks(graph, into_logits))
        assert torch.allclose(run.logits, corrupt.logits, atol=1e-4)
        everything = graph.dense(torch.ones(graph.n_edges))
        both = torch.stack([torch.zeros_like(everything), everything])
        run = patcher.run(b.clean, corrupt.outputs, both)  # two copies in one forward
        assert torch.allclose(run.logits[:3], clean, atol=1e-4)
        assert torch.allclose(run.logits[3:], corrupt.logits, atol=1e-4)


def test_native_models(mlp_model, attn_model) -> None:
    _check_model(mlp_model)
    _check_model(attn_model)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_hf_models_including_gqa_and_rotary(kind: str) -> None:
    model = hf_model(kind)
    if kind == "llama":
        assert graph_for_model(model).gqa
    _check_model(model)


def test_edges_match_transformer_lens_activation_patches(mlp_model, batch) -> None:
    """Ablating every edge into a channel = patching that head's q (or the MLP output) with
    its corrupted value; ablating every edge out of a head = patching its z. Both computed
    with plain TransformerLens hooks, independently of the edge machinery."""
    model, graph = mlp_model, graph_for_model(mlp_model)
    patcher = EdgePatcher(model, graph)
    _, cache = model.run_with_cache(batch.corrupted)
    cases = [
        ([e for e in graph.edges if e[1] == "a1.h2<q>"], hooks.site("q", 1).name, 2),
        ([e for e in graph.edges if e[1] == "m0"], hooks.site("mlp_out", 0).name, None),
        ([e for e in graph.edges if e[0] == "a0.h3"], hooks.z(0).name, 3),
    ]
    with torch.no_grad():
        abl = patcher.run(batch.corrupted).outputs
        for edges, name, head in cases:

            def patch(t, hook, name=name, head=head):
                t = t.clone()
                if head is None:
                    return cache[name]
                t[:, :, head] = cache[name][:, :, head]
                return t

            with model.hooks(fwd_hooks=[(name, patch)]):
                expected = model(batch.clean)
            got = patcher.run(batch.clean, abl, _masks(graph, edges)).logits
            assert torch.allclose(got, expected, atol=1e-4), name
