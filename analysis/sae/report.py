"""Turning evaluated SAEs into run results: per-head rows, artifact files and a summary.

Shared by ``sae-train`` and ``sae-eval``. Several layers' SAEs in one run share one feature
numbering: ``feature`` = the feature's index in its SAE plus the total size of the SAEs of lower
layers in the run (``sae_features.parquet`` also has ``layer`` and ``sae_feature``, the index
within that layer's SAE). With one SAE, ``feature == sae_feature``. Artifacts:

- ``sae/L{layer}/cfg.json`` + ``sae/L{layer}/sae_weights.safetensors`` (sae-lens format);
- ``sae_features.parquet``, ``sae_head_shares.parquet``, ``sae_top_contexts.json``
  (keys: ``feature`` as a string), ``sae_dfa.parquet`` — see ``attribution``/``contexts``.

Per-head rows: ``sae_features_dominated``, ``sae_polysemanticity`` and ``sae_activity_share``
(the share of all feature activity of the layer's SAE that lies in the head's slice:
``Σ_f mean_act_f · share[f, h] / Σ_f mean_act_f``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from sae_lens.saes.sae import SAE

from analysis.sae import attribution, contexts
from analysis.sae.activations import TokenBatch
from analysis.sae.evaluate import SAEEvaluation, evaluate_sae
from storage.records import ArtifactIn, HeadResultIn

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

Progress = Callable[[float, str], None]


@dataclass
class SAEReport:
    head_results: list[HeadResultIn] = field(default_factory=list)
    artifacts: list[ArtifactIn] = field(default_factory=list)
    evaluations: dict[int, SAEEvaluation] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"evaluation": {str(k): v.summary() for k, v in self.evaluations.items()}}


def weight_artifacts(sae: SAE[Any], layer: int, folder: Path) -> list[ArtifactIn]:
    """Save ``sae`` in sae-lens format under ``folder`` and describe both files as artifacts."""
    weights, cfg = sae.save_model(folder)
    meta = {"layer": layer, "d_in": sae.cfg.d_in, "d_sae": sae.cfg.d_sae}
    return [
        ArtifactIn(f"sae/L{layer}/cfg.json", "sae-weights", str(cfg), "application/json", meta),
        ArtifactIn(f"sae/L{layer}/sae_weights.safetensors", "sae-weights", str(weights), meta=meta),
    ]


def activity_share(shares: torch.Tensor, mean_act: torch.Tensor) -> torch.Tensor:
    """Per head: the share of the SAE's total mean feature activity lying in the head's slice."""
    weighted = (mean_act.double()[:, None] * shares.double()).sum(0)
    return (weighted / weighted.sum().clamp_min(1e-30)).float()


def _head_rows(layer: int, values: dict[str, torch.Tensor]) -> list[HeadResultIn]:
    return [
        HeadResultIn(metric, layer, head, float(v))
        for metric, per_head in values.items()
        for head, v in enumerate(per_head.tolist())
    ]


def analyse_saes(
    model: TransformerBridge,
    saes: dict[int, SAE[Any]],
    tokens: TokenBatch,
    workdir: Path,
    *,
    n_top: int = 5,
    dfa_contexts: int = 3,
    progress: Progress | None = None,
) -> SAEReport:
    """Evaluate and attribute each layer's SAE on ``tokens``; write the artifact files."""
    report = SAEReport()
    n_heads = model.cfg.n_heads
    features, shares_rows, dfa_rows, top_json = [], [], [], {}
    offset = 0
    for i, (layer, sae) in enumerate(sorted(saes.items())):
        if progress is not None:
            progress(i / len(saes), f"evaluating the layer {layer} SAE")
        ev = evaluate_sae(model, sae, tokens)
        report.evaluations[layer] = ev
        shares = attribution.head_shares(sae, n_heads)
        features.append(
            attribution.feature_table(shares, ev.frequency, ev.mean_act, ev.max_act, layer, offset)
        )
        shares_rows.append(attribution.share_table(shares, layer, offset))
        per_head = attribution.head_summary(sae, n_heads, ev.frequency, ev.mean_act)
        report.head_results += _head_rows(
            layer,
            {
                "sae_features_dominated": per_head["features_dominated"],
                "sae_polysemanticity": per_head["polysemanticity"],
                "sae_activity_share": activity_share(shares, ev.mean_act),
            },
        )
        alive = [f for f in range(sae.cfg.d_sae) if ev.frequency[f] > 0]
        top = contexts.top_activations(model, sae, layer, tokens, k=n_top)
        for f, entries in contexts.top_contexts(model, sae, layer, tokens, top, alive).items():
            top_json[str(f + offset)] = entries
        dfa_rows.append(
            contexts.dfa_table(
                model,
                sae,
                layer,
                tokens,
                top,
                alive,
                n_contexts=dfa_contexts,
                feature_offset=offset,
            )
        )
        report.artifacts += weight_artifacts(sae, layer, workdir / "sae" / f"L{layer}")
        offset += sae.cfg.d_sae
    report.artifacts += _write_tables(workdir, features, shares_rows, dfa_rows, top_json)
    return report


def _write_tables(
    workdir: Path,
    features: list[pd.DataFrame],
    shares: list[pd.DataFrame],
    dfa: list[pd.DataFrame],
    top_json: dict[str, Any],
) -> list[ArtifactIn]:
    workdir.mkdir(parents=True, exist_ok=True)
    tables = {
        "sae_features.parquet": pd.concat(features, ignore_index=True),
        "sae_head_shares.parquet": pd.concat(shares, ignore_index=True),
        "sae_dfa.parquet": pd.concat([d for d in dfa if not d.empty] or dfa, ignore_index=True),
    }
    out = []
    for name, frame in tables.items():
        frame.to_parquet(workdir / name, index=False)
        out.append(ArtifactIn(name, "sae", str(workdir / name)))
    path = workdir / "sae_top_contexts.json"
    path.write_text(json.dumps(top_json))
    out.append(ArtifactIn(path.name, "sae", str(path), "application/json"))
    return out
