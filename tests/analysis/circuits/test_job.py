"""The circuit job on the zoo induction model: queued through the real worker and store;
every method recovers the known circuit; ACDC checkpoints, cancels and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from analysis.circuits.discover import DiscoverySettings, discover
from analysis.circuits.ground_truth import load_ground_truth
from analysis.circuits.job import checkpoint_path, circuit_job
from analysis.circuits.zoo_tasks import induction_pairs
from analysis.configs import parse_run_config
from analysis.jobs import Cancelled, JobContext
from analysis.prompt_batch import build_pair_batch
from analysis.zoo import is_built, zoo_folder
from storage.records import RunStatus

MODEL = "zoo:induction-2l"
pytestmark = pytest.mark.skipif(not is_built("induction-2l"), reason="zoo model not built")


@pytest.fixture(scope="module")
def zoo_model():
    from analysis.zoo.checkpoint import load_zoo_bridge

    model = load_zoo_bridge(zoo_folder("induction-2l"))
    model.enable_compatibility_mode()
    return model


# Edge AUC gate of issue 5: 0.95 for every method. Measured on these 12 pairs (corrupted
# ablation, positional edges left out as the ground truth says): exact 0.986, acdc 0.998,
# eap 0.994, eap-ig (m=5, edge path) 0.976. EAP and EAP-IG reach it with their defaults, which
# score query/key edges through the exact attention softmax (qk_fix, AtP*): linearised, the
# key-side edges a0.h3 -> a1.h*<k> (exact effect -1.1..-2.1 logits each, through saturated
# attention) score ~0 and the AUCs are 0.925 (eap) and 0.884 (eap-ig on inputs). See
# docs/circuits.md.
EDGE_AUC = {"exact": 0.95, "acdc": 0.95, "eap": 0.95, "eap-ig": 0.95}


@pytest.mark.parametrize(
    "settings",
    [
        DiscoverySettings(method="eap"),
        DiscoverySettings(method="eap-ig", ig_steps=5),
        DiscoverySettings(method="exact"),
        DiscoverySettings(method="acdc", metric="kl", tau=0.02),
    ],
    ids=lambda s: s.method,
)
def test_every_method_recovers_the_induction_circuit(zoo_model, settings) -> None:
    batch = build_pair_batch(zoo_model, induction_pairs(12, seed=1))
    truth = load_ground_truth(None, MODEL, "induction-contrast")
    d = discover(zoo_model, batch, settings, truth=truth)
    roc = d.summary["roc"]["edge"]
    assert roc["n_excluded"] == 4  # input -> a0.h2/a0.h3 <q>/<k>: positions only
    assert roc["auc"] >= EDGE_AUC[settings.method], roc["auc"]
    assert d.summary["faithfulness"] > 0.85
    graph, top = d.task.graph, d.scores.abs().argsort(descending=True)[:20].tolist()
    # the previous-token head's value edge is among the strongest (exact: 1st of 81; with the
    # QK fix q/k edges score at their real size, so eap ranks it 6th, eap-ig 4th)
    assert graph.edge_index("input", "a0.h2<v>") in top[:10]
    assert sum(graph.edge_index(f"a1.h{h}", "logits") in top for h in range(4)) >= 2


def _enqueue(store, method: str, task: str = "induction-contrast", **extra) -> int:
    """A circuit run on 8 induction_pairs stored as a set of ``task`` (the pairs are built
    as the induction-contrast generator builds them)."""
    pairs = induction_pairs(8, seed=2)
    name = f"induction-{task or 'imported'}"
    if name not in {s.name for s in store.list_prompt_sets()}:
        store.add_prompt_set(name, pairs, "test", MODEL, {"task": task} if task else {})
    config = {"kind": "circuit", "model": MODEL, "prompt_set": name, "method": method}
    config |= extra
    ps = store.get_prompt_set(name)
    return store.enqueue_run("circuit", config, MODEL, ps.id, {}, "test").id


def test_queued_run_stores_edges_nodes_and_summary(store) -> None:
    from analysis.worker import Worker

    run_id = _enqueue(store, "eap")
    final = Worker(store, heartbeat_s=0.2).reap_and_claim()
    assert final is not None and final.id == run_id
    assert final.status == RunStatus.FINISHED, final.error
    edges, nodes = store.edges(run_id), store.nodes(run_id)
    assert len(edges) == final.summary["n_edges"] and edges["in_circuit"].any()
    assert {"input", "logits", "a1.h0"} <= set(nodes["name"])
    for key in ("faithfulness_curve", "roc", "n_forward", "n_backward", "wall_s",
                "metric_clean", "metric_corrupt"):  # fmt: skip
        assert key in final.summary
    assert (final.summary["n_forward"], final.summary["n_backward"]) == (2, 1)


def test_a_run_is_scored_only_against_its_own_tasks_ground_truth(store) -> None:
    from analysis.worker import Worker

    worker = Worker(store, heartbeat_s=0.2)
    same = _enqueue(store, "eap")
    other = _enqueue(store, "eap", task="induction")
    imported = _enqueue(store, "eap", task="")
    named_wrong = _enqueue(store, "eap", ground_truth="gpt2-small-ioi")
    runs = {r: worker.reap_and_claim() for r in (same, other, imported, named_wrong)}
    assert runs[same].summary["ground_truth"] == {
        "name": "zoo:induction-2l/induction-contrast", "task": "induction-contrast",
        "model": MODEL,
    }  # fmt: skip
    assert "roc" in runs[same].summary
    for run_id, says in ((other, "no ground truth for task 'induction'"), (imported, "task")):
        final = runs[run_id]
        assert final.status == RunStatus.FINISHED and "roc" not in final.summary
        assert final.summary["ground_truth"]["name"] is None
        assert says in final.summary["ground_truth"]["reason"]
    assert runs[named_wrong].status == RunStatus.FAILED
    assert "holds for task 'ioi'" in runs[named_wrong].error


def _context(store, run_id: int, workdir: Path, model, cancel_after: int | None) -> JobContext:
    run = store.get_run(run_id)
    calls = [0]

    def on_progress(fraction: float, message: str) -> bool:
        calls[0] += 1
        return cancel_after is not None and calls[0] > cancel_after

    return JobContext(
        run_id=run_id, config=parse_run_config(run.config), store=store, workdir=workdir,
        model_loader=lambda cfg: model, _on_progress=on_progress,
    )  # fmt: skip


def test_acdc_cancel_then_resume(store, zoo_model, tmp_path, monkeypatch) -> None:
    import analysis.circuits.job as job

    monkeypatch.setattr(job, "CHECKPOINT_EVERY_S", 0.0)
    acdc = {"metric": "kl", "tau": 0.02}
    first = _enqueue(store, "acdc", **acdc)
    ctx = _context(store, first, tmp_path, zoo_model, cancel_after=3)
    with pytest.raises(Cancelled):
        circuit_job(ctx)
    saved = json.loads(checkpoint_path(ctx, first).read_text())
    assert saved["state"]["position"] > 0
    second = _enqueue(store, "acdc", resume_from=first, **acdc)
    resumed = circuit_job(_context(store, second, tmp_path, zoo_model, None))
    fresh = circuit_job(_context(store, _enqueue(store, "acdc", **acdc), tmp_path, zoo_model, None))
    assert resumed.summary["resumed_from"] == first
    assert [e.in_circuit for e in resumed.edges] == [e.in_circuit for e in fresh.edges]
    other = _enqueue(store, "acdc", resume_from=first, metric="kl", tau=0.05)
    with pytest.raises(Exception, match="tau"):
        circuit_job(_context(store, other, tmp_path, zoo_model, None))
    assert torch.tensor([e.score for e in fresh.edges]).abs().sum() > 0


@pytest.mark.skipif(not is_built("greater-than-3l"), reason="zoo model not built")
def test_eap_finds_the_greater_than_circuit() -> None:
    from analysis.circuits.zoo_tasks import greater_than_pairs
    from analysis.zoo.checkpoint import load_zoo_bridge

    model = load_zoo_bridge(zoo_folder("greater-than-3l"))
    model.enable_compatibility_mode()
    batch = build_pair_batch(model, greater_than_pairs(16, seed=1))
    truth = load_ground_truth(None, "zoo:greater-than-3l", "greater-than")
    d = discover(model, batch, DiscoverySettings(method="eap"), truth=truth)
    assert d.summary["roc"]["edge"]["auc"] >= 0.9 and d.summary["roc"]["node"]["auc"] >= 0.85


def test_default_run_falls_back_to_linear_scores_when_the_attention_check_fails(
    store, monkeypatch
) -> None:
    """A model whose attention is not softmax(q k^T / scale) of its q/k hooks (ALiBi,
    soft-capping; simulated by a wrong attention scale): a default (qk_fix) run still
    finishes, with the linear scores, and its summary says the fix was not applied and why."""
    from analysis.circuits import qk_fix
    from analysis.worker import Worker

    linear_id = _enqueue(store, "eap", qk_fix=False)
    assert Worker(store, heartbeat_s=0.2).reap_and_claim().status == RunStatus.FINISHED
    monkeypatch.setattr(qk_fix, "attention_scale", lambda patcher: 1.0)
    run_id = _enqueue(store, "eap")
    final = Worker(store, heartbeat_s=0.2).reap_and_claim()
    assert final is not None and final.id == run_id
    assert final.status == RunStatus.FINISHED, final.error
    assert final.summary["qk_fix"].startswith("not applied: layer 0's attention pattern")
    assert store.get_run(linear_id).summary["qk_fix"] is False
    fixed, linear = store.edges(run_id), store.edges(linear_id)
    assert fixed["score"].tolist() == linear["score"].tolist()
