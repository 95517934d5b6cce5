"""The ``circuit`` job: circuit discovery on a stored prompt set, as a queued or inline run.

Stores every edge (source, target, score, in_circuit), every node, and the summary
(faithfulness, faithfulness curve, ROC/AUC against the ground truth when there is one, pass
counts, wall time, clean/corrupted metric). The ground truth is the config's ``ground_truth``
or, for zoo models, the zoo's own one for the prompt set's task when it has one
(``choose_ground_truth``); ``summary["ground_truth"]`` names it, or says why there is none.

ACDC checkpoints: after each round (at most every ``CHECKPOINT_EVERY_S``) the state goes to
``<store home>/checkpoints/circuit-run<id>.json`` (the store home is the folder holding the
artifacts directory), written atomically, so it survives a cancel, a crash or a reaped run. A
run with ``resume_from=<id>`` loads it, checks that the model, prompt set, pairs, metric,
ablation and tau are the same, and continues; a finished run also keeps its final state as the
``acdc_state.json`` artifact, which ``resume_from`` reads when the checkpoint file is gone.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from analysis.circuits.acdc import AcdcProgress
from analysis.circuits.discover import Discovery, DiscoverySettings, discover, edge_table
from analysis.circuits.graph import CircuitGraphError, graph_for_model, node_layer_head
from analysis.circuits.ground_truth import GroundTruthError, choose_ground_truth
from analysis.configs.circuits import CircuitConfig
from analysis.jobs import JobContext, JobError
from analysis.metrics import MetricUndefined
from analysis.prompt_batch import PromptBatchError, build_pair_batch
from storage.errors import CorruptArtifact
from storage.records import ArtifactIn, EdgeIn, NodeIn, RunOutput

log = logging.getLogger(__name__)
CHECKPOINT_EVERY_S = 2.0
STATE_ARTIFACT = "acdc_state.json"


def checkpoint_path(ctx: JobContext, run_id: int) -> Path:
    return Path(ctx.store.artifacts_dir).parent / "checkpoints" / f"circuit-run{run_id}.json"


def _signature(cfg: CircuitConfig, n_pairs: int, n_edges: int) -> dict[str, Any]:
    return {
        "model": cfg.model, "prompt_set": cfg.prompt_set, "n_pairs": n_pairs,
        "metric": cfg.metric, "ablation": cfg.ablation, "tau": cfg.tau, "n_edges": n_edges,
    }  # fmt: skip


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _load_resume(ctx: JobContext, cfg: CircuitConfig, signature: dict) -> AcdcProgress | None:
    if cfg.resume_from is None:
        return None
    path = checkpoint_path(ctx, cfg.resume_from)
    if not path.is_file():
        try:
            path = Path(ctx.store.open_artifact(cfg.resume_from, STATE_ARTIFACT).path)
        except CorruptArtifact as exc:
            raise JobError(str(exc)) from None
        except Exception:  # noqa: BLE001 — any lookup failure means: nothing to resume
            raise JobError(
                f"run {cfg.resume_from} left no ACDC checkpoint to resume from "
                f"(looked for {path} and its {STATE_ARTIFACT} artifact)"
            ) from None
    saved = json.loads(path.read_text())
    differs = {k: (saved["signature"].get(k), v) for k, v in signature.items()}
    differs = {k: pair for k, pair in differs.items() if pair[0] != pair[1]}
    if differs:
        listed = ", ".join(f"{k} (was {a!r}, now {b!r})" for k, (a, b) in differs.items())
        raise JobError(f"cannot resume run {cfg.resume_from}: different {listed}")
    return AcdcProgress.from_json(saved["state"])


def _output(d: Discovery, artifacts: list[ArtifactIn]) -> RunOutput:
    edges = [EdgeIn(s, t, v, k) for s, t, v, k in edge_table(d)]
    nodes = []
    for name, (score, used) in d.nodes.items():
        layer, head = node_layer_head(name)
        nodes.append(NodeIn(name=name, layer=layer, head=head, score=score, in_circuit=used))
    return RunOutput(edges=edges, nodes=nodes, artifacts=artifacts, summary=d.summary)


def circuit_job(ctx: JobContext) -> RunOutput:
    cfg = ctx.config
    assert isinstance(cfg, CircuitConfig)
    model = ctx.model()
    try:
        batch = build_pair_batch(model, ctx.pairs()[: cfg.max_pairs])
        choice = choose_ground_truth(ctx.local_file(cfg.ground_truth), cfg.model, ctx.task())
        signature = _signature(cfg, batch.n_pairs, graph_for_model(model).n_edges)
        resume = _load_resume(ctx, cfg, signature) if cfg.method == "acdc" else None
    except (PromptBatchError, GroundTruthError, CircuitGraphError) as exc:
        raise JobError(str(exc)) from None
    ckpt, last_write = checkpoint_path(ctx, ctx.run_id), [0.0]

    def save(prog: AcdcProgress) -> None:
        if time.monotonic() - last_write[0] >= CHECKPOINT_EVERY_S:
            _write_json(ckpt, {"signature": signature, "state": prog.to_json()})
            last_write[0] = time.monotonic()

    settings = DiscoverySettings(
        **{f: getattr(cfg, f) for f in DiscoverySettings.__dataclass_fields__}
    )
    try:
        d = discover(
            model, batch, settings, truth=choice.truth, progress=ctx.progress, resume=resume,
            checkpoint=save if cfg.method == "acdc" else None,
        )  # fmt: skip
    except (MetricUndefined, CircuitGraphError, GroundTruthError) as exc:
        raise JobError(str(exc)) from None
    artifacts = []
    if d.acdc_state is not None:
        final = ctx.workdir / STATE_ARTIFACT
        _write_json(final, {"signature": signature, "state": d.acdc_state.to_json()})
        _write_json(ckpt, {"signature": signature, "state": d.acdc_state.to_json()})
        artifacts.append(ArtifactIn(STATE_ARTIFACT, "acdc-state", str(final), "application/json"))
    d.summary["ground_truth"] = choice.summary()
    if resume is not None:
        d.summary["resumed_from"] = cfg.resume_from
    ctx.progress(1.0, "done")
    return _output(d, artifacts)
