"""Head importance and pruning curves on models whose answers are known.

- the head mask really edits the model (ξ = 1 reproduces it, ξ_h = 0 changes the output);
- gradient importance equals central finite differences per prompt (float64 zoo models, every
  ablation's gate, at ξ = 1 and at a pruned mask);
- batched mask evaluation equals one forward per mask; removing one head alone equals
  ``ablate_heads`` (zero, mean, resample);
- on induction-2l (induction-contrast) and greater-than-3l (greater-than), whose ground truths
  name the circuit heads: pruning the other heads keeps the task, pruning the circuit heads
  does not, and gradient importance puts the circuit heads first — on induction-2l only once
  the head's mean output is kept (mean ablation), and the test shows why;
- per-layer normalisation, random orders by seed, the fraction prunable;
- the job through the store: its ablation numbers are the ablate run's, a stored score orders
  the heads, bad score runs and bad configs are refused in one line.
"""

from __future__ import annotations

import json

import pytest
import torch

from analysis.ablation import ablate_heads
from analysis.configs import ConfigError, parse_run_config
from analysis.importance.evaluate import MaskEvaluator, evaluate_masks_exact
from analysis.importance.gradient import (
    finite_difference_gradients,
    head_gradients,
    importance,
    normalise_per_layer,
)
from analysis.importance.mask import gate_hooks, mask_sources
from analysis.importance.pruning import (
    ascending_order,
    iterative_order,
    prefix_masks,
    prunable_fraction,
    random_orders,
    removal_counts,
)
from analysis.prompt_batch import build_pair_batch
from analysis.prompts.generators import generate_pairs
from analysis.zoo import is_built, zoo_folder
from storage.records import RunStatus

INDUCTION, GREATER = "zoo:induction-2l", "zoo:greater-than-3l"
pytestmark = pytest.mark.skipif(
    not (is_built("induction-2l") and is_built("greater-than-3l")), reason="zoo not built"
)


def _load(spec: str, dtype: torch.dtype = torch.float32):
    from analysis.zoo.checkpoint import load_zoo_bridge

    model = load_zoo_bridge(zoo_folder(spec.split(":")[1]), dtype=dtype)
    model.enable_compatibility_mode(disable_warnings=True)
    return model.eval()


@pytest.fixture(scope="module")
def induction():
    return _load(INDUCTION)


@pytest.fixture(scope="module")
def greater():
    return _load(GREATER)


def _batch(model, task: str, n: int, seed: int = 0):
    return build_pair_batch(model, generate_pairs(model, task, n, seed))


def _circuit(spec: str, task: str, shape: tuple[int, int]) -> torch.Tensor:
    """1 for the heads the zoo model's ground truth of ``task`` names."""
    path = zoo_folder(spec.split(":")[1]) / "ground_truths" / f"{task}.json"
    nodes = json.loads(path.read_text())["nodes"]
    mask = torch.zeros(shape)
    for node in nodes:
        if node.startswith("a"):
            layer, head = node[1:].split(".h")
            mask[int(layer), int(head)] = 1.0
    return mask


def _shape(model) -> tuple[int, int]:
    return int(model.cfg.n_layers), int(model.cfg.n_heads)


# --- the mask ------------------------------------------------------------------------------


def test_the_mask_edits_every_layers_output(induction):
    batch = _batch(induction, "induction-contrast", 4)
    layers, heads = _shape(induction)
    with torch.no_grad():
        plain = induction(batch.clean)
    for layer in range(layers):
        for value, changes in ((1.0, False), (0.0, True)):
            gate = torch.ones(batch.n_pairs, heads)
            gate[:, 1] = value
            with torch.no_grad(), induction.hooks(fwd_hooks=gate_hooks({layer: gate}, None)):
                edited = induction(batch.clean)
            assert (not torch.equal(plain, edited)) is changes, (layer, value)


# --- gradient importance = finite differences ---------------------------------------------


@pytest.fixture(scope="module")
def float64_models():
    return {INDUCTION: _load(INDUCTION, torch.float64), GREATER: _load(GREATER, torch.float64)}


@pytest.mark.parametrize(
    ("spec", "task", "objective", "ablation", "pruned"),
    [
        (INDUCTION, "induction-contrast", "metric", "zero", True),
        (INDUCTION, "induction-contrast", "loss", "mean", False),
        (GREATER, "greater-than", "metric", "resample", False),
        (GREATER, "greater-than", "loss", "zero", True),
    ],
)
def test_gradient_equals_finite_differences(
    float64_models, spec, task, objective, ablation, pruned
):
    model = float64_models[spec]
    batch = _batch(model, task, 4)
    sources = mask_sources(model, batch, ablation)
    mask = torch.ones(_shape(model))
    if pruned:  # at a pruned mask, as the iterative order computes it
        mask[0, 1] = 0.0
    grads = head_gradients(model, batch, objective, "logit_diff", sources, mask)
    reference = finite_difference_gradients(
        model, batch, objective, "logit_diff", sources, base=mask
    )
    assert grads.shape == (4, *_shape(model))
    assert grads.abs().max() > 1e-2  # not trivially zero
    # the metric is read in float32 (analysis.metrics): differences of ~1e-5 of its scale
    torch.testing.assert_close(grads.double(), reference, rtol=1e-4, atol=3e-4)


def test_per_layer_normalisation_has_unit_norm(induction):
    batch = _batch(induction, "induction-contrast", 4)
    scores = normalise_per_layer(importance(head_gradients(induction, batch, "loss", "", None)))
    torch.testing.assert_close(scores.norm(dim=-1), torch.ones(scores.shape[0]))
    zero_layer = normalise_per_layer(torch.tensor([[0.0, 0.0], [3.0, 4.0]]))
    assert zero_layer.tolist() == [[0.0, 0.0], pytest.approx([0.6, 0.8])]


# --- batched masks = one forward each; single heads = ablate_heads -------------------------


@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
def test_batched_masks_equal_one_forward_per_mask(greater, ablation):
    batch = _batch(greater, "greater-than", 6)
    sources = mask_sources(greater, batch, ablation)
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(7, *_shape(greater), generator=g) > 0.5).float()
    masks[3] = torch.rand(_shape(greater), generator=g)  # fractional gates too
    masks[5] = masks[1]  # a duplicate, evaluated once
    evaluator = MaskEvaluator(greater, batch, "logit_diff", sources)
    evaluator.chunk = 2  # several batched forwards
    fast = evaluator.evaluate(masks)
    exact = evaluate_masks_exact(greater, batch, "logit_diff", sources, masks)
    torch.testing.assert_close(fast.metric, exact.metric, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.loss, exact.loss, rtol=1e-5, atol=1e-5)
    assert evaluator.forwards == 3  # 6 distinct masks, 2 per forward
    single = torch.ones(12, *_shape(greater))
    single.view(12, -1)[torch.arange(12), torch.arange(12)] = 0.0
    effect = evaluator.evaluate(torch.cat([torch.ones(1, 3, 4), single])).metric
    expected = ablate_heads(greater, batch, ablation, "logit_diff")
    torch.testing.assert_close((effect[1:] - effect[0]).float().reshape(3, 4), expected,
                               rtol=1e-4, atol=1e-4)  # fmt: skip


# --- known answers on the zoo ----------------------------------------------------------------


def _kept(model, batch, keep: torch.Tensor, ablation: str = "zero") -> float:
    evaluator = MaskEvaluator(model, batch, "logit_diff", mask_sources(model, batch, ablation))
    out = evaluator.evaluate(torch.stack([torch.ones_like(keep), keep]))
    return float(out.metric[1] / out.metric[0])


def test_pruning_non_circuit_heads_keeps_the_task_and_circuit_heads_destroy_it(induction, greater):
    # induction-2l: 6 of 8 heads are the circuit; the 2 others are diffuse current-token
    # heads whose removal costs ~20 % of the logit difference (measured: 0.79 kept)
    circuit = _circuit(INDUCTION, "induction-contrast", (2, 4))
    batch = _batch(induction, "induction-contrast", 24)
    assert _kept(induction, batch, circuit) > 0.7
    assert abs(_kept(induction, batch, 1 - circuit)) < 0.05  # logit diff ~0: no induction
    # greater-than-3l: 3 of 12 heads; the rest of the model is idle (measured: 1.01 kept),
    # without the circuit heads the model falls back on its YY-blind prior over tens digits
    # (measured: 0.75 kept; with every head removed 0.55)
    circuit = _circuit(GREATER, "greater-than", (3, 4))
    batch = _batch(greater, "greater-than", 24)
    assert abs(_kept(greater, batch, circuit) - 1) < 0.03
    assert _kept(greater, batch, 1 - circuit) < 0.8


def _top(scores: torch.Tensor, k: int) -> set[int]:
    return set(ascending_order(-scores)[:k])


def test_gradient_importance_ranks_the_circuit_heads_first(induction, greater):
    circuit = _circuit(GREATER, "greater-than", (3, 4))
    batch = _batch(greater, "greater-than", 24)
    members = set(torch.nonzero(circuit.flatten()).flatten().tolist())
    for ablation in ("zero", "mean"):
        for objective in ("metric", "loss"):
            grads = head_gradients(greater, batch, objective, "logit_diff",
                                   mask_sources(greater, batch, ablation))  # fmt: skip
            assert _top(importance(grads), 3) == members, (ablation, objective)

    circuit = _circuit(INDUCTION, "induction-contrast", (2, 4))
    batch = _batch(induction, "induction-contrast", 24)
    members = set(torch.nonzero(circuit.flatten()).flatten().tolist())
    mean = mask_sources(induction, batch, "mean")
    for objective in ("metric", "loss"):
        grads = head_gradients(induction, batch, objective, "logit_diff", mean)
        assert _top(importance(grads), 6) == members, objective
    # Michel's zero mask: the two layer-0 circuit heads lead, but non-circuit a0.h1 outranks
    # layer-1 induction heads. Why: ξ scales a head's whole output, its prompt-independent mean
    # as well; the layer-1 heads' mean output pushes the logit difference the other way, so
    # ∂L/∂ξ = Σ (z - m)·g + Σ m·g partly cancels (a1.h0: +1.7 and -1.6 logits).
    zero = head_gradients(induction, batch, "metric", "logit_diff", None)
    centred = head_gradients(induction, batch, "metric", "logit_diff", mean)
    assert _top(importance(zero), 2) == {2, 3}
    assert ascending_order(importance(zero))[0] == 0  # a0.h0 least important
    assert _top(importance(zero), 6) != members
    mean_part, centred_part = (zero - centred).mean(0), centred.mean(0)
    for head in range(4):  # every layer-1 head: the mean part opposes the induction part
        assert centred_part[1, head] > 0 > mean_part[1, head]
    assert importance(centred)[1].sum() > 1.5 * importance(zero)[1].sum()


# --- pruning orders -------------------------------------------------------------------------


def test_iterative_order_recomputes_at_the_pruned_mask():
    seen = []

    def score(mask: torch.Tensor) -> torch.Tensor:
        seen.append(mask.clone())
        return torch.arange(6.0).reshape(2, 3).flip(-1) * mask  # remaining heads keep order

    order, passes = iterative_order(score, (2, 3), step=2)
    assert (order, passes) == ([2, 1, 0, 5, 4, 3], 3)
    assert [int(m.sum()) for m in seen] == [6, 4, 2]
    masks = prefix_masks(order, [0, 2, 6], (2, 3))
    assert masks[1].flatten().tolist() == [1, 0, 0, 1, 1, 1] and masks[2].sum() == 0


def test_random_orders_are_reproducible_by_seed_and_counts_span_all_heads():
    assert random_orders(12, 3, 7) == random_orders(12, 3, 7)
    assert random_orders(12, 3, 7) != random_orders(12, 3, 8)
    assert sorted(random_orders(12, 1, 0)[0]) == list(range(12))
    assert removal_counts(8, 11) == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert removal_counts(144, 3) == [0, 72, 144]


def test_prunable_fraction_stops_at_the_first_point_below_the_threshold():
    f = [0.0, 0.25, 0.5, 0.75, 1.0]
    assert prunable_fraction(f, [10, 9.5, 8.0, 9.5, 0.0], 10.0, 0.1) == 0.25
    assert prunable_fraction(f, [10, 9.5, 9.1, 9.0, 9.0], 10.0, 0.1) == 1.0
    assert prunable_fraction(f, [-1, -1, -1, -1, -1], -1.0, 0.1) is None


# --- the job through the store --------------------------------------------------------------


def _enqueue(store, kind: str, **config) -> int:
    name = "ind-contrast"
    if name not in {s.name for s in store.list_prompt_sets()}:
        from analysis.models import load_model

        pairs = generate_pairs(load_model(INDUCTION), "induction-contrast", 12, 0)
        store.add_prompt_set(name, pairs, "test", INDUCTION, {"task": "induction-contrast"})
    full = {"kind": kind, "model": config.pop("model", INDUCTION), "prompt_set": name} | config
    parse_run_config(full)
    ps = store.get_prompt_set(name)
    return store.enqueue_run(kind, full, full["model"], ps.id, {}, "test").id


def test_job_ablation_equals_the_ablate_run_and_a_stored_score_orders_heads(store):
    from analysis.worker import Worker

    worker = Worker(store, heartbeat_s=0.2)
    ablate = _enqueue(store, "ablate", methods=["mean"])
    assert worker.reap_and_claim().status == RunStatus.FINISHED
    run_id = _enqueue(store, "importance", ablation="mean", curve_points=5, random_seeds=2,
                      score_run=ablate, score_metric="ablate_mean", score_abs=True)  # fmt: skip
    final = worker.reap_and_claim()
    assert final.id == run_id and final.status == RunStatus.FINISHED, final.error
    mine, theirs = store.head_grid(run_id, "ablate_mean"), store.head_grid(ablate, "ablate_mean")
    assert mine.frame["value"].tolist() == pytest.approx(theirs.frame["value"].tolist(), abs=1e-5)
    s = final.summary
    assert set(s["pruning_curve"]["orders"]) == {
        "gradient", "gradient_iterative", "ablation", "random", "score"
    }  # fmt: skip
    # |ablate_mean| ascending is the ablation order: the two curves coincide
    curves = s["pruning_curve"]["orders"]
    assert curves["score"]["metric"]["mean"] == curves["ablation"]["metric"]["mean"]
    assert curves["random"]["seeds"] == 2 and len(curves["random"]["metric"]["std"]) == 5
    assert -1 <= s["spearman_grad_ablation"] <= 1
    assert set(s["prunable"]) == set(curves)
    metrics = set(store.metrics(run_id))
    assert {"grad_importance", "grad_signed", "ablation_importance", "ablate_loss_mean",
            "pruned_at"} <= metrics  # fmt: skip

    other = _enqueue(store, "ablate", methods=["zero"], model=GREATER)
    assert worker.reap_and_claim().status == RunStatus.FAILED  # no greater-than pairs
    for bad, says in (
        ({"score_run": ablate, "score_metric": "nope"}, "no per-head metric 'nope'"),
        ({"score_run": other, "score_metric": "ablate_zero"}, "FAILED, not FINISHED"),
        ({"score_run": 9999, "score_metric": "x"}, "there is no run 9999"),
    ):
        _enqueue(store, "importance", **bad)
        failed = worker.reap_and_claim()
        assert failed.status == RunStatus.FAILED and says in failed.error, failed.error
        assert "\n" not in failed.error and store.metrics(failed.id) == []


def test_a_score_run_of_another_model_shape_is_refused(store, greater):
    from analysis.importance.scores import ScoreError, stored_score
    from storage.records import HeadResultIn, RunOutput

    ps = store.add_prompt_set("gt", generate_pairs(greater, "greater-than", 2, 0), "t", GREATER)
    config = {"kind": "heads", "model": GREATER, "prompt_set": "gt"}
    run = store.enqueue_run("heads", config, GREATER, ps.id, {}, "test")
    store.claim_run(run.id, "w")
    rows = [HeadResultIn("s", layer, head, 1.0) for layer in range(3) for head in range(4)]
    store.finish_run(run.id, RunOutput(head_results=rows))
    with pytest.raises(ScoreError, match=r"3 × 4 model .* this model has 2 × 4"):
        stored_score(store, run.id, "s", (2, 4))
    assert stored_score(store, run.id, "s", (3, 4)).shape == (3, 4)


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"score_run": 3}, "--score-run and --score-metric go together"),
        ({"score_metric": "x"}, "--score-run and --score-metric go together"),
        ({"max_metric_drop": 1.5}, "max_metric_drop"),
        ({"iterative_step": 0.0}, "iterative_step"),
        ({"orders": ["gradient", "magic"]}, "orders must be a non-empty list"),
        ({"metric": "kl"}, "metric"),
        ({"prompt_set": None}, "needs a prompt set"),
        ({"curve_points": 1}, "curve_points"),
    ],
)
def test_bad_configs_are_refused_in_one_line(bad, says):
    config = {"kind": "importance", "model": INDUCTION, "prompt_set": "p"} | bad
    with pytest.raises(ConfigError, match=says) as err:
        parse_run_config(config)
    assert "\n" not in str(err.value)
