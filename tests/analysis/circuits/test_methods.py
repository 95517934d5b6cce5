"""EAP and EAP-IG edge scores against independent computations on a tiny model."""

from __future__ import annotations

import pytest
import torch

from analysis.circuits.eap import eap_scores
from analysis.circuits.eap_ig import eap_ig_scores
from analysis.circuits.exact import exact_scores
from analysis.circuits.task import build_task


def test_eap_is_the_linearisation_of_exact_edge_patching(mlp_model, batch) -> None:
    """Exact single-edge patching with the ablation scaled by eps, divided by eps, tends to
    the EAP score as eps -> 0 (finite differences of the true metric)."""
    task = build_task(mlp_model, batch, with_gradients=True)
    eap = eap_scores(task, qk_fix=False)
    assert (task.counter.n_forward, task.counter.n_backward) == (2, 1)
    errors = []
    for eps in (1e-1, 1e-2):
        small = build_task(mlp_model, batch)
        small.ablated = small.clean_outputs + eps * (task.ablated - task.clean_outputs)
        fd = exact_scores(small) / eps
        errors.append(float((fd - eap).abs().max() / eap.abs().max()))
    assert errors[1] < 0.02 and errors[1] < errors[0]


def test_exact_scores_are_single_edge_patches(attn_model, batch) -> None:
    task = build_task(attn_model, batch)
    scores = exact_scores(task)
    for e in (0, 40, task.graph.n_edges - 1):
        mask = torch.zeros(1, task.graph.n_edges, dtype=torch.bool)
        mask[0, e] = True
        expected = float(task.ablated_metric(mask)[0]) - task.metric_clean
        assert scores[e] == pytest.approx(expected, abs=1e-5)


def test_eap_ig_inputs_is_complete_on_the_input_edges(mlp_model, batch) -> None:
    """Integrated gradients are complete: the input node's edge scores sum to
    m(corrupted embeddings) - m(clean) = m_corrupt - m_clean, with error O(1/m^2)."""
    gaps = []
    for steps in (2, 8):
        task = build_task(mlp_model, batch)
        scores = eap_ig_scores(task, steps, path="inputs", qk_fix=False)
        assert task.counter.n_forward == steps + 2 and task.counter.n_backward == steps
        total = float(scores[task.graph.edge_source == 0].sum())
        gaps.append(abs(total - (task.metric_corrupt - task.metric_clean)))
    effect = abs(task.metric_corrupt - task.metric_clean)
    assert gaps[1] < 0.02 * effect and gaps[1] < gaps[0]


def test_eap_ig_edges_is_complete_over_all_edges(mlp_model, batch) -> None:
    """IG over the edge-ablation coefficients: all edge scores sum to m(every edge ablated) -
    m(clean) = m_corrupt - m_clean (computed by forward runs), with error O(1/m^2)."""
    gaps = []
    for steps in (2, 8):
        task = build_task(mlp_model, batch)
        scores = eap_ig_scores(task, steps, path="edges", qk_fix=False)
        assert task.counter.n_forward == steps + 2 and task.counter.n_backward == steps
        gaps.append(abs(float(scores.sum()) - (task.metric_corrupt - task.metric_clean)))
    effect = abs(task.metric_corrupt - task.metric_clean)
    assert gaps[1] < 0.02 * effect and gaps[1] < gaps[0] / 4


def test_eap_ig_tracks_exact_patching_better_than_its_effect_size(attn_model, batch) -> None:
    for path in ("edges", "inputs"):
        task = build_task(attn_model, batch)
        ig, exact = eap_ig_scores(task, 8, path=path), exact_scores(task)
        assert torch.corrcoef(torch.stack([ig, exact]))[0, 1] > 0.7, path


def test_eap_ig_rejects_bad_settings(mlp_model, batch) -> None:
    task = build_task(mlp_model, batch)
    with pytest.raises(ValueError, match="ig_path"):
        eap_ig_scores(task, 2, path="embeddings")
    with pytest.raises(ValueError, match="ig_steps"):
        eap_ig_scores(task, 0)


def test_eap_refuses_kl(mlp_model, batch) -> None:
    task = build_task(mlp_model, batch, metric="kl", with_gradients=True)
    with pytest.raises(ValueError, match="kl"):
        eap_scores(task)


def test_mean_and_zero_ablation(mlp_model, batch) -> None:
    for ablation in ("mean", "zero"):
        task = build_task(mlp_model, batch, ablation=ablation)
        everything = torch.ones(1, task.graph.n_edges, dtype=torch.bool)
        assert float(task.ablated_metric(everything)[0]) == pytest.approx(task.metric_corrupt)
        assert float(task.ablated_metric(~everything)[0]) == pytest.approx(
            task.metric_clean, abs=1e-4
        )
    zero = build_task(mlp_model, batch, ablation="zero")
    assert float(zero.ablated.abs().max()) == 0.0
    mean = build_task(mlp_model, batch, ablation="mean")
    # position 0 is real in every prompt: its ablation value is the plain batch mean
    assert torch.allclose(mean.ablated[0, 0], mean.clean_outputs[:, 0].mean(0), atol=1e-5)
