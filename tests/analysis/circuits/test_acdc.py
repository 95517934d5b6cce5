"""Batched ACDC with subtree pruning makes the one-edge-at-a-time decisions, resumably."""

from __future__ import annotations

import pytest
import torch

from analysis.circuits.acdc import (
    AcdcProgress,
    acdc,
    acdc_reference,
    candidates_from_attribution,
)
from analysis.circuits.task import build_task

from .conftest import random_batch


@pytest.mark.parametrize(
    ("which", "metric", "tau"), [("attn", "kl", 0.01), ("mlp", "logit_diff", 0.02)]
)
def test_batched_acdc_equals_reference(
    mlp_model, attn_model, which: str, metric: str, tau: float
) -> None:
    model = mlp_model if which == "mlp" else attn_model
    task = build_task(model, random_batch(n=2, pos=6, seed=1), metric=metric)
    fast = acdc(task, tau)  # first: it also pays the layer replay's recording and check
    ref = acdc_reference(task, tau)
    assert torch.equal(ref.kept, fast.kept)
    assert fast.damage == pytest.approx(ref.damage, abs=1e-5)
    assert ref.n_calls == task.graph.n_edges + 1
    assert fast.n_calls * 4 < ref.n_calls
    tested = fast.tested
    assert torch.allclose(fast.scores[tested], ref.scores[tested], atol=1e-5)


@pytest.mark.parametrize("which", ["attn", "mlp"])
def test_acdc_with_untested_edges_equals_reference(mlp_model, attn_model, which: str) -> None:
    model = mlp_model if which == "mlp" else attn_model
    task = build_task(model, random_batch(n=2, pos=6, seed=1), metric="kl")
    g = torch.Generator().manual_seed(0)
    untested = torch.rand(task.graph.n_edges, generator=g) < 0.4
    fast = acdc(task, 0.01, untested=untested)
    ref = acdc_reference(task, 0.01, untested=untested)
    assert torch.equal(ref.kept, fast.kept)
    assert not fast.kept[untested].any()
    assert not fast.tested[untested].any() and not ref.tested[untested].any()
    assert ref.n_calls == int((~untested).sum()) + 1
    assert torch.allclose(fast.scores[fast.tested], ref.scores[fast.tested], atol=1e-5)


def test_acdc_candidates_from_attribution_use_damage_units(attn_model) -> None:
    task = build_task(attn_model, random_batch(n=2, pos=6, seed=1), metric="logit_diff")
    gap = task.metric_clean - task.metric_corrupt
    scores = torch.tensor([0.0, 0.004, -0.004, 0.02]) * gap
    chosen = candidates_from_attribution(task, scores, tau=0.01, fraction=0.5)
    assert chosen.tolist() == [True, True, True, False]


class _Stop(Exception):
    pass


def test_acdc_resumes_from_a_checkpoint(attn_model, batch) -> None:
    whole = acdc(build_task(attn_model, batch, metric="kl"), 0.005, window=8)
    task = build_task(attn_model, batch, metric="kl")
    saved: list[dict] = []

    def stop_after_three(prog: AcdcProgress, done: float) -> None:
        saved.append(prog.to_json())
        if len(saved) == 3:
            raise _Stop

    with pytest.raises(_Stop):
        acdc(task, 0.005, window=8, on_round=stop_after_three)
    resumed = acdc(task, 0.005, window=8, resume=AcdcProgress.from_json(saved[-1]))
    assert 0 < saved[-1]["position"] < len(task.graph.edges)
    assert torch.equal(resumed.kept, whole.kept)
    assert resumed.n_calls == whole.n_calls


def test_tau_must_be_positive(attn_model, batch) -> None:
    with pytest.raises(ValueError, match="tau"):
        acdc(build_task(attn_model, batch, metric="kl"), 0.0)
