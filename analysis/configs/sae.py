"""Configs of the attention-output SAE run kinds: ``sae-train``, ``sae-eval``, ``sae-circuit``.

Torch-free (imported by the web process). ``layers`` accept negative indices (``-1`` = last
layer), resolved against the model when the job runs. Token sources: ``zoo`` (the zoo model's own
training task), ``repeat`` (BOS + a random token block repeated with a random period; works for
any model), ``auto`` (``zoo`` for zoo models, else ``repeat``),
``text`` (a local UTF-8 file given by ``text_path``, tokenised with the model's tokenizer) and
``prompts`` (the clean and corrupted prompts of ``prompt_set``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from analysis.configs.base import RunConfigBase

TokenSourceName = Literal["auto", "zoo", "repeat", "text", "prompts"]


class _TokenSourceFields(RunConfigBase):
    source: TokenSourceName = Field(
        default="auto",
        description="Token source: zoo (the zoo model's training task), repeat (repeated "
        "random tokens), text (--text-path), prompts (the prompt set); auto = zoo for zoo "
        "models, else repeat",
    )
    text_path: str | None = Field(
        default=None,
        description="Text file for source=text (from the web: upload it)",
        json_schema_extra={"server_file": "text"},
    )
    context_size: int = Field(default=64, ge=2, le=8192, description="Tokens per sequence")
    eval_tokens: int = Field(
        default=16_384, ge=64, le=10_000_000, description="Held-out tokens for evaluation"
    )
    top_contexts: int = Field(default=5, ge=1, le=50, description="Top contexts per feature")
    dfa_contexts: int = Field(
        default=3, ge=0, le=50, description="Top contexts per feature that get a DFA table"
    )

    @model_validator(mode="after")
    def _source_inputs(self) -> _TokenSourceFields:
        if self.source == "text" and not self.text_path:
            raise ValueError("source=text needs text_path: pass --text-path FILE")
        if self.source == "prompts" and self.prompt_set is None:
            raise ValueError("source=prompts needs a prompt set: pass --prompts NAME")
        return self


class SAETrainConfig(_TokenSourceFields):
    """Train attention-output (hook_z) SAEs with sae-lens, one per layer, then evaluate them."""

    kind: Literal["sae-train"] = "sae-train"
    layers: list[int] = Field(
        default_factory=lambda: [-1], description="Layers to train on (-1 = last layer)"
    )
    architecture: Literal["topk", "standard"] = Field(
        default="topk", description="sae-lens architecture: topk or standard (L1)"
    )
    d_sae: int = Field(default=256, ge=1, le=1_000_000, description="Features per SAE")
    k: int = Field(default=8, ge=1, description="Active features per token (topk)")
    l1_coefficient: float = Field(default=1.0, ge=0, description="L1 penalty (standard)")
    lr: float = Field(default=3e-3, gt=0, le=1, description="Adam learning rate")
    training_tokens: int = Field(
        default=200_000, ge=1, le=10_000_000_000, description="Training tokens"
    )
    batch_tokens: int = Field(default=1024, ge=1, le=1_000_000, description="Tokens per step")

    @model_validator(mode="after")
    def _sizes(self) -> SAETrainConfig:
        if not self.layers:
            raise ValueError("layers: give at least one layer, e.g. --layers 1")
        if self.architecture == "topk" and self.k > self.d_sae:
            raise ValueError(f"k={self.k} exceeds d_sae={self.d_sae}; pass a smaller --k")
        return self


class SAEEvalConfig(_TokenSourceFields):
    """Evaluate and attribute an existing attention SAE: from a run, a folder or the registry."""

    kind: Literal["sae-eval"] = "sae-eval"
    sae_run: int | None = Field(default=None, description="Id of a finished sae-train run")
    sae_layer: int | None = Field(
        default=None, description="Which layer's SAE of --sae-run (default: its only/first)"
    )
    sae_path: str | None = Field(
        default=None,
        description="Local sae-lens SAE folder (cfg.json + sae_weights; CLI and API only)",
        json_schema_extra={"server_file": "folder"},
    )
    sae_release: str | None = Field(default=None, description="sae-lens pretrained release")
    sae_id: str | None = Field(default=None, description="SAE id within --sae-release")

    @model_validator(mode="after")
    def _one_sae(self) -> SAEEvalConfig:
        given = [self.sae_run is not None, bool(self.sae_path), bool(self.sae_release)]
        if sum(given) != 1:
            raise ValueError(
                "sae: give exactly one of --sae-run ID, --sae-path FOLDER or "
                "--sae-release NAME with --sae-id ID"
            )
        if bool(self.sae_release) != bool(self.sae_id):
            raise ValueError("sae_id: --sae-release and --sae-id go together")
        return self


class SAECircuitConfig(RunConfigBase):
    """O'Neill & Bui (2024): find circuit heads from discretised SAE codes of each head's
    output on positive (clean) vs negative (corrupted) prompts."""

    kind: Literal["sae-circuit"] = "sae-circuit"
    n_codes: int = Field(default=16, ge=2, le=4096, description="SAE features per head")
    k: int = Field(default=1, ge=1, description="Active features per example (topk)")
    steps: int = Field(default=300, ge=1, le=100_000, description="Training steps per head SAE")
    lr: float = Field(default=1e-2, gt=0, le=1, description="Adam learning rate")
    position: Literal["last", "all"] = Field(
        default="last", description="Code each prompt at its last position, or every position"
    )
    threshold: float = Field(
        default=0.5, ge=0, le=1, description="Heads scoring at least this are in the circuit"
    )
    metric: Literal["logit_diff", "kl", "prob"] = Field(
        default="logit_diff", description="Metric for the faithfulness evaluation"
    )
    ablation: Literal["corrupted", "mean", "zero"] = Field(
        default="corrupted", description="Value ablated edges carry in the evaluation"
    )
    ground_truth: str | None = Field(
        default=None,
        description="Known circuit to score against: zoo, a reference name or a JSON file "
        "(from the web: upload it); empty = the zoo model's own when there is one",
        json_schema_extra={"server_file": "json"},
    )

    @model_validator(mode="after")
    def _needs_prompts(self) -> SAECircuitConfig:
        if self.prompt_set is None:
            raise ValueError("prompt_set: sae-circuit needs a prompt set: pass --prompts NAME")
        if self.k > self.n_codes:
            raise ValueError(f"k={self.k} exceeds n_codes={self.n_codes}")
        return self
