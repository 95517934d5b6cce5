"""Config of the run kind ``lens``: attention lenses per head (Attention Lens, Sakarvadia et al.
2023).

Zero-training lenses on the clean prompts of a set: each head's OV–unembed projection
(``embed(s) · W_V W_O · W_U``: the tokens a source token promotes and suppresses) and the head
logit lens (the head's output at each position decoded as ``ActivationCache.apply_ln_to_stack``
+ ``W_U``, i.e. its direct logit attribution to every token). Optionally (``--train``) a linear
lens per head, ``d_model → d_model`` decoded by the model's final norm and unembedding, trained
to the model's own next-token distribution. Torch-free.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from analysis.configs.base import RunConfigBase


class LensConfig(RunConfigBase):
    """OV–unembed and head logit lenses per head; optionally a trained linear lens per head."""

    kind: Literal["lens"] = "lens"
    max_prompts: int = Field(default=16, ge=1, le=1000, description="Prompts used from the set")
    top_k: int = Field(default=5, ge=1, le=50, description="Tokens kept per lens row")
    full_vocab_limit: int = Field(
        default=8192, ge=0, le=65_536,
        description="Largest vocabulary whose full source × target OV lens is computed; "
        "above it only the prompt set's tokens are sources",
    )  # fmt: skip
    train: bool = Field(default=False, description="Also train a linear lens per head")
    train_text: str | None = Field(
        default=None,
        description="Text file to train the lens on (from the web: upload it); default: the "
        "set's clean prompts",
        json_schema_extra={"server_file": "text"},
    )
    text_windows: int = Field(
        default=16, ge=1, le=1024, description="Windows of the text file trained on"
    )
    text_window: int | None = Field(
        default=None, ge=4, le=4096,
        description="Tokens per text window, BOS included (default: the model's context, at "
        "most 128)",
    )  # fmt: skip
    train_steps: int = Field(default=100, ge=1, le=100_000, description="Lens training steps")
    train_batch: int = Field(
        default=64, ge=1, le=65_536, description="Positions per lens training step"
    )
    train_lr: float = Field(default=1e-3, gt=0.0, le=1.0, description="Adam learning rate")
    heldout: float = Field(
        default=0.25, ge=0.0, lt=1.0,
        description="Fraction of the lens data's sequences kept out of training, to score the "
        "trained lens on (0: train on all)",
    )  # fmt: skip

    @model_validator(mode="after")
    def _check(self) -> LensConfig:
        if self.prompt_set is None:
            raise ValueError(
                "prompt_set: the lens run needs a prompt set (--prompts NAME); make one with: "
                "headlab prompts generate induction --model MODEL"
            )
        if self.train_text is not None and not self.train:
            raise ValueError("train_text: a text file trains a lens only with --train; add it")
        return self
