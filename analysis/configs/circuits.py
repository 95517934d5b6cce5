"""Config of the ``circuit`` run kind: circuit discovery on a prompt set. Torch-free.

Methods: ``eap`` (attribution patching), ``eap-ig`` (integrated gradients, ``ig_steps`` steps
along ``ig_path``: ``edges``, every edge's ablation scaled together, or ``inputs``, the input
embeddings only; at the points ``ig_rule``: ``midpoint`` (k+1/2)/m or ``left`` k/m, as
hannamw/EAP-IG), both by default with ``qk_fix`` (query/key edges scored through the exact
attention softmax, AtP*; rotary models included; where a model's attention cannot be reproduced
from its q/k hooks, e.g. ALiBi or soft-capping, the run falls back to linear scores and its
summary says ``qk_fix: "not applied: <reason>"``),
``acdc`` (greedy exact pruning with threshold ``tau``) and ``exact`` (one forward per edge; the
reference for small models). ``top_k`` / ``threshold`` choose which scored edges form the stored
circuit (EAP, EAP-IG, exact; ACDC's circuit is what it keeps); with neither, the circuit is the
smallest top-k reaching ``target_faithfulness``. Either can be changed later without
recomputing scores (``analysis.circuits.select``). ``level=node`` selects whole nodes (top-k
nodes by node score; a node's score is the sum of its outgoing |edge scores|).

ACDC resumability: every ACDC run checkpoints its state to
``$HEADLAB_HOME/checkpoints/circuit-run<id>.json`` after each round; a new run with
``resume_from=<id>`` and the same model, prompt set, metric, ablation and tau continues from it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from analysis.configs.base import RunConfigBase


class CircuitConfig(RunConfigBase):
    """Find the circuit behind a behaviour and score it (faithfulness, ROC vs ground truth)."""

    kind: Literal["circuit"] = "circuit"
    method: Literal["eap", "eap-ig", "acdc", "exact"] = Field(
        default="eap-ig", description="Discovery method: eap, eap-ig, acdc or exact"
    )
    metric: Literal["logit_diff", "kl", "prob"] = Field(
        default="logit_diff", description="Behaviour metric: logit_diff, kl or prob"
    )
    ablation: Literal["corrupted", "mean", "zero"] = Field(
        default="corrupted", description="Value ablated edges carry: corrupted, mean or zero"
    )
    level: Literal["edge", "node"] = Field(
        default="edge", description="Circuit selection by edges or by whole nodes"
    )
    ig_steps: int = Field(default=5, ge=1, le=1000, description="EAP-IG integration steps")
    ig_path: Literal["edges", "inputs"] = Field(
        default="edges",
        description="EAP-IG path: edges (every edge's ablation scaled together) or inputs "
        "(input embeddings only)",
    )
    ig_rule: Literal["midpoint", "left"] = Field(
        default="midpoint",
        description="EAP-IG step points: midpoint ((k+1/2)/m) or left (k/m, k=0..m-1, as "
        "hannamw/EAP-IG)",
    )
    qk_fix: bool = Field(
        default=True,
        description="EAP/EAP-IG: score query/key edges through the exact attention softmax "
        "(AtP*) where the model's attention allows it (else linear, said in the summary); "
        "false = plain linearisation",
    )
    tau: float = Field(default=0.01, gt=0, description="ACDC threshold on the damage increase")
    acdc_prune: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="ACDC: first score edges with EAP-IG and remove, untested, those whose "
        "attributed damage is below this fraction of tau (0 = test every edge)",
    )
    top_k: int | None = Field(default=None, ge=0, description="Keep the top-k edges (or nodes)")
    threshold: float | None = Field(
        default=None, ge=0, description="Keep edges (or nodes) with |score| >= threshold"
    )
    target_faithfulness: float = Field(
        default=0.9, description="Without top_k/threshold: smallest top-k reaching this"
    )
    ground_truth: str | None = Field(
        default=None,
        description="Known circuit to score against: zoo (the zoo model's own), a reference "
        "name, or a JSON file (from the web: upload it); empty = the zoo model's when there is one",
        json_schema_extra={"server_file": "json"},
    )
    max_pairs: int = Field(default=64, ge=1, le=100_000, description="Pairs used from the set")
    resume_from: int | None = Field(
        default=None, ge=1, description="ACDC: continue from this run's checkpoint"
    )

    @model_validator(mode="after")
    def _check(self) -> CircuitConfig:
        if self.prompt_set is None:
            raise ValueError("circuit discovery needs a prompt set: pass --prompts NAME")
        if self.method == "eap" and self.metric == "kl":
            raise ValueError(
                "method eap cannot use metric kl (its gradient at the clean run is zero); "
                "use --metric logit_diff or prob, or --method eap-ig"
            )
        if self.top_k is not None and self.threshold is not None:
            raise ValueError("give top_k or threshold, not both")
        if self.acdc_prune > 0 and self.method != "acdc":
            raise ValueError("acdc_prune only applies to --method acdc")
        if self.resume_from is not None and self.method != "acdc":
            raise ValueError("resume_from only applies to --method acdc")
        if self.method == "acdc" and self.level == "node":
            raise ValueError(
                "acdc prunes edges; its node circuit is derived from the kept edges. "
                "Use --level edge with --method acdc"
            )
        return self
