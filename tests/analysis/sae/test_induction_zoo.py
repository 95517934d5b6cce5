"""Quality on zoo:induction-2l: a layer-1 attention SAE trains fast, reconstructs well, and its
features belong to the induction heads of its ground_truths/induction-contrast.json."""

from __future__ import annotations

import json
import time

import pytest
import torch

from analysis.sae.activations import ZooTaskTokens, collect_tokens
from analysis.sae.attribution import direct_feature_attribution, head_shares
from analysis.sae.contexts import top_activations
from analysis.sae.evaluate import evaluate_sae
from analysis.sae.report import activity_share
from analysis.sae.train import TrainSettings, train_attention_saes
from analysis.zoo import GROUND_TRUTH_DIR, zoo_folder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def zoo():
    from analysis.models import load_model

    torch.set_num_threads(2)
    model = load_model("zoo:induction-2l")
    source = ZooTaskTokens.for_spec("zoo:induction-2l", model)
    settings = TrainSettings(d_sae=128, k=8, lr=5e-3, batch_tokens=256, training_tokens=100_000)
    cpu = time.process_time()
    result = train_attention_saes(model, source, [1], settings, _tmp(), model_spec="zoo")
    cpu = time.process_time() - cpu
    tokens = collect_tokens(source, 4096, seed=99)  # a fresh seed: held out from training
    sae = result.saes[1].sae
    return model, sae, tokens, cpu, evaluate_sae(model, sae, tokens)


def _tmp():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="sae-zoo-"))


def _period(row: torch.Tensor) -> int:
    body = row[1:]
    return next(p for p in range(5, 21) if torch.equal(body[p:], body[:-p]))


def test_layer1_sae_trains_in_under_a_cpu_minute_to_high_explained_variance(zoo):
    model, sae, tokens, cpu, ev = zoo
    assert cpu < 60, f"training took {cpu:.1f} CPU seconds"
    assert ev.explained_variance >= 0.9, ev.summary()
    assert ev.loss_recovered is not None and ev.loss_recovered > 0.9
    assert abs(ev.loss_sae_error - ev.loss_clean) < 1e-5


def test_features_attribute_to_the_ground_truth_induction_heads(zoo):
    model, sae, tokens, _, ev = zoo
    truth = json.loads(
        (zoo_folder("induction-2l") / GROUND_TRUTH_DIR / "induction-contrast.json").read_text()
    )
    induction = [int(n.split(".h")[1]) for n in truth["nodes"] if n.startswith("a1.")]
    assert induction, "the ground truth names layer-1 induction heads"
    per_head = activity_share(head_shares(sae, model.cfg.n_heads), ev.mean_act)
    assert float(per_head[induction].sum()) >= 0.9


def test_dfa_points_at_the_tokens_after_earlier_occurrences(zoo):
    """Through the induction heads, a feature firing at position p of a string repeating with
    period P is driven by the positions right after earlier copies of the current token
    (p - P + 1, p - 2P + 1, ...): that is where induction heads attend."""
    model, sae, tokens, _, _ = zoo
    top = top_activations(model, sae, 1, tokens, k=1)
    cases = []  # (feature, sequence, position, period) of strongest contexts on a later copy
    for f in torch.nonzero(top.value[0] > 0).flatten().tolist():
        seq, pos = int(top.seq[0, f]), int(top.pos[0, f])
        period = _period(tokens.tokens[seq])
        if pos >= period + 1:  # on the first copy there is nothing to induct from
            cases.append((f, seq, pos, period))
    assert len(cases) >= 20
    f, seq, pos, _ = (torch.tensor(c) for c in zip(*cases, strict=True))
    dfa = direct_feature_attribution(model, sae, 1, tokens.tokens[seq], pos, f).clamp_min(0)
    fractions = []
    for grid, (_, _, p, period) in zip(dfa, cases, strict=True):
        sources = list(range(p - period + 1, 0, -period))
        fractions.append(float(grid[:, sources].sum() / grid.sum()))
    assert sum(fractions) / len(fractions) >= 0.8


def test_sae_codes_find_the_induction_circuit(zoo):
    """O'Neill & Bui's discrete-code method on repeated strings (positive) vs strings whose
    second half is fresh letters (negative) ranks the ground-truth heads first."""
    import random

    from analysis.circuits.ground_truth import choose_ground_truth
    from analysis.prompt_batch import build_pair_batch
    from analysis.sae.circuit_eval import evaluate_head_circuit
    from analysis.sae.sae_circuit import CodeSettings, head_codes
    from storage.records import PairIn

    model = zoo[0]
    rng, letters = random.Random(0), "abcdefghijklmnopqrstuvwxyz"
    pairs = []
    for _ in range(10):
        block, cut = rng.sample(letters, 10), rng.randint(3, 8)
        fresh = rng.sample([c for c in letters if c not in block], cut)
        wrong = rng.choice([c for c in letters if c != block[cut]])
        pairs.append(
            PairIn("".join(block + block[:cut]), "".join(block + fresh), block[cut], wrong)
        )
    batch = build_pair_batch(model, pairs)
    codes = head_codes(model, batch, CodeSettings(steps=150))
    scores = {f"a{c.layer}.h{c.head}": c.score for c in codes}
    chosen = {n for n, s in scores.items() if s >= 0.5}
    truth = choose_ground_truth(None, "zoo:induction-2l", "induction-contrast").truth
    _, _, summary = evaluate_head_circuit(model, batch, scores, chosen, truth=truth)
    assert summary["roc"]["node"]["auc"] >= 0.8, scores
    assert summary["faithfulness"] >= 0.8, (chosen, summary["faithfulness"])
