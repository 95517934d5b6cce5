"""Config of the run kind ``explore``: one forward of a model on any text, every head at once.

The text is given as ``text`` or as a prompt of a stored set (``prompt_set`` + ``prompt_index``,
its clean prompt). The job stores every head's attention pattern on it, per-head scores on this
text (``analysis.heads``' statistics), and the direct logit attribution of every head and the
logit lens per layer for the model's top next token and, when given, for ``next_token``.
Torch-free.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from analysis.configs.base import RunConfigBase

MAX_TEXT_CHARS = 20_000


class ExploreConfig(RunConfigBase):
    """Every head's attention, scores and DLA on one text (one forward)."""

    kind: Literal["explore"] = "explore"
    text: str | None = Field(
        default=None,
        max_length=MAX_TEXT_CHARS,
        description="Text to run the model on (or --prompts NAME with --prompt-index)",
    )
    prompt_index: int | None = Field(
        default=None, ge=0, description="Prompt of --prompts whose clean text is explored"
    )
    next_token: str | None = Field(
        default=None,
        max_length=200,
        description="A next token (one token of the model) whose DLA and logit lens are also "
        "computed, beside the model's top next token",
    )
    max_tokens: int = Field(
        default=256, ge=2, le=2048, description="Longest text explored, in tokens (BOS included)"
    )

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, text: str | None) -> str | None:
        if text is not None and text.strip() == "":
            raise ValueError("it is empty; type or paste some text")
        return text

    @field_validator("next_token")
    @classmethod
    def _next_token_not_empty(cls, token: str | None) -> str | None:
        if token == "":
            raise ValueError("it is empty; give one token of the model or leave it out")
        return token

    @model_validator(mode="after")
    def _check(self) -> ExploreConfig:
        if self.text is not None and self.prompt_set is not None:
            raise ValueError("text: give the text or --prompts NAME, not both")
        if self.text is None and self.prompt_set is None:
            raise ValueError("text: give the text to explore (or --prompts NAME --prompt-index I)")
        if self.prompt_index is not None and self.prompt_set is None:
            raise ValueError("prompt_index: it picks a prompt of --prompts NAME; add --prompts")
        return self
