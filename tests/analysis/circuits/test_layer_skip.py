"""Layer skipping: ablated runs from a shared prefix equal full forwards, on every architecture."""

from __future__ import annotations

import pytest
import torch

from analysis.circuits.exact import exact_cost, exact_scores
from analysis.circuits.task import build_task

from .conftest import VOCAB, hf_model, perturb_norms, random_batch


@pytest.fixture(scope="module")
def deep_model():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=32, d_head=8, n_heads=4, n_layers=3, n_ctx=32, d_vocab=VOCAB, d_mlp=64,
        act_fn="gelu", normalization_type="LN", seed=3,
    )  # fmt: skip
    model = TransformerBridge.boot_native(cfg)
    perturb_norms(model)
    model.enable_compatibility_mode()
    return model


@pytest.fixture(scope="module")
def llama_model():
    return hf_model("llama")


def _masks(task, seed: int) -> list[torch.Tensor]:
    """Batches of masks of every shape the planner distinguishes."""
    n, layer = task.graph.n_edges, task.skip.edge_layer
    g = torch.Generator().manual_seed(seed)
    top = int(layer.max())
    single = torch.zeros(6, n, dtype=torch.bool)
    for row, e in enumerate(torch.nonzero(layer == top - 1).flatten()[:6].tolist()):
        single[row, e] = True  # one edge each, all into one layer: from the clean run
    shared = torch.rand(n, generator=g) < 0.3
    prefix = shared.repeat(5, 1)
    prefix[:, layer >= 1] = False  # the same edges into layer 0 in every copy ...
    later = torch.rand(5, n, generator=g) < 0.3
    prefix |= later & (layer >= 1)  # ... and different ones later: from a prefix run
    rand = torch.rand(4, n, generator=g) < 0.5  # differing in layer 0: full forwards
    one = torch.rand(1, n, generator=g) < 0.5  # one copy
    logits_only = torch.zeros(3, n, dtype=torch.bool)
    logits_only[:, layer == top] = torch.rand(3, int((layer == top).sum()), generator=g) < 0.5
    return [single, prefix, rand, one, logits_only, torch.zeros(2, n, dtype=torch.bool)]


@pytest.mark.parametrize("name", ["deep_model", "llama_model", "attn_model"])
def test_skipped_layers_equal_full_forwards(request, name: str) -> None:
    model = request.getfixturevalue(name)
    batch = random_batch(n=3, pos=7, seed=2)
    for metric in ("logit_diff", "kl"):
        fast = build_task(model, batch, metric=metric)
        full = build_task(model, batch, metric=metric)
        full.skip = None
        for masks in _masks(fast, seed=5):
            got, want = fast.ablated_metric(masks), full.ablated_metric(masks)
            assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), (metric, got, want)
        assert fast.skip is not None and fast.skip.off is None and fast.skip.checked
        assert fast.counter.compute < full.counter.compute


def test_exact_patching_computes_what_it_estimates(deep_model) -> None:
    batch = random_batch(n=3, pos=7, seed=2)
    task = build_task(deep_model, batch)
    before = task.counter.compute
    scores = exact_scores(task)
    full = build_task(deep_model, batch)
    full.skip = None
    assert torch.allclose(scores, exact_scores(full), atol=1e-5)
    spent = task.counter.compute - before
    overhead = 2  # the replay's recording, the first skipped call's full-forward check
    assert exact_cost(task) - 1e-6 <= spent <= exact_cost(task) + overhead + 1e-6
    assert exact_cost(task) < 0.6 * task.graph.n_edges  # edges into later layers cost less


def test_a_skip_that_disagrees_is_turned_off(deep_model) -> None:
    task = build_task(deep_model, random_batch(n=3, pos=7, seed=2))
    assert task.skip is not None
    assert not task._check_skip(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.1]))
    assert task.skip.off is not None and "full forwards" in task.skip.off
    masks = torch.zeros(2, task.graph.n_edges, dtype=torch.bool)
    masks[0, -1] = True
    calls = task.counter.n_calls
    task.ablated_metric(masks)
    assert task.counter.n_calls == calls + 1 and task.counter.compute % 1 == 0


def test_exact_discovery_states_its_cost_before_it_starts(attn_model) -> None:
    from analysis.circuits.discover import DiscoverySettings, discover

    messages: list[tuple[float, str]] = []
    d = discover(
        attn_model,
        random_batch(n=2, pos=6, seed=1),
        DiscoverySettings(method="exact"),
        progress=lambda f, m: messages.append((f, m)),
    )
    first = next(m for f, m in messages if "exact patching" in m)
    assert f"{d.task.graph.n_edges} edges x" in first and "about" in first
    assert messages.index(next(x for x in messages if x[1] == first)) < len(messages) - 1
    assert d.summary["estimated_s"] > 0
