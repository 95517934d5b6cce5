"""Run configurations: frozen pydantic models with a ``kind`` discriminator.

This module and every ``analysis.configs.*`` module are torch-free: the web process imports
them to validate forms before it enqueues a run. A config is validated in full before anything
is written; errors name the field and the fix.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analysis.model_specs import ModelSpecError, parse_model_spec


class ConfigError(ValueError):
    """A run configuration is invalid. The message names the field and how to fix it."""


class RunConfigBase(BaseModel):
    # a NaN or infinite number anywhere is refused as such, not by a bound it happens to fail
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    kind: str
    model: str = Field(description="Model spec, e.g. zoo:induction-2l or hf:gpt2")
    prompt_set: str | None = Field(default=None, description="Name of a stored prompt set")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    device_map: Literal["auto", "balanced"] | None = Field(
        default=None,
        description="Split an HF model over every GPU here (HF device_map); replaces device",
    )
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    seed: int = 0

    @field_validator("model")
    @classmethod
    def _known_model_spec(cls, spec: str) -> str:
        try:
            parse_model_spec(spec)
        except ModelSpecError as exc:
            raise ValueError(str(exc)) from None
        return spec

    @model_validator(mode="after")
    def _device_map_needs_an_hf_model(self) -> RunConfigBase:
        if self.device_map is not None and parse_model_spec(self.model).kind == "zoo":
            raise ValueError(
                "device_map: zoo models are tiny and load on one device; drop --device-map"
            )
        return self


def unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` → ``(X, True)``; anything else → ``(annotation, False)``. Used to build CLI
    options and web form widgets from config fields."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "config"
        parts.append(f"{field}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)
