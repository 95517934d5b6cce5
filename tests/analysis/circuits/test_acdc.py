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
    assert ref.n_calls <= 2 * int((~untested).sum()) + 2  # a test, and the state before it
    assert torch.allclose(fast.scores[fast.tested], ref.scores[fast.tested], atol=1e-5)


@pytest.mark.parametrize("which", ["attn", "mlp"])
def test_untested_edges_full_acdc_removes_leave_its_circuit(mlp_model, attn_model, which) -> None:
    model = mlp_model if which == "mlp" else attn_model
    task = build_task(model, random_batch(n=2, pos=6, seed=1), metric="kl")
    full = acdc(task, 0.01)
    g = torch.Generator().manual_seed(1)
    untested = ~full.kept & (torch.rand(task.graph.n_edges, generator=g) < 0.7)
    pruned = acdc(task, 0.01, untested=untested)
    assert int(untested.sum()) > 10
    assert torch.equal(pruned.kept, full.kept)
    assert pruned.damage == pytest.approx(full.damage, abs=1e-5)
    assert int(pruned.tested.sum()) < int(full.tested.sum())


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


def test_discover_with_pruned_candidates_says_what_it_never_tested(attn_model) -> None:
    from analysis.circuits.discover import DiscoverySettings, discover

    batch = random_batch(n=2, pos=6, seed=1)
    settings = DiscoverySettings(method="acdc", metric="kl", tau=0.01, acdc_prune=0.5)
    d = discover(attn_model, batch, settings)
    s = d.summary
    assert d.acdc_state is not None
    untested = torch.zeros(s["n_edges"], dtype=torch.bool)
    untested[d.acdc_state.untested] = True
    assert s["n_edges_untested"] == int(untested.sum()) > 0
    assert s["n_edges_tested"] == len(d.acdc_state.scores) <= s["n_edges"] - s["n_edges_untested"]
    assert not d.kept[untested].any()
    assert s["forward_equivalents"] > 0


def test_acdc_prune_is_refused_for_other_methods() -> None:
    from pydantic import ValidationError

    from analysis.configs.circuits import CircuitConfig

    with pytest.raises(ValidationError, match="acdc_prune only applies to --method acdc"):
        CircuitConfig(model="zoo:induction-2l", prompt_set="s", method="eap", acdc_prune=0.5)
