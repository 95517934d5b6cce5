"""Launching runs from the web form: describe each run kind's fields, validate, enqueue.

Forms are generated from the pydantic config classes in ``analysis.configs`` (torch-free), so a
new run kind appears on the Launch page without any UI code. Values arrive from the browser as
strings, numbers, booleans or lists; they are coerced per field, validated by the config class
(every error mapped back to its field) and only then enqueued. Nothing is written on error.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from analysis.configs import parse_run_config, run_kinds, unwrap_optional
from app.launching import LaunchRefused, enqueue_config
from storage.records import RunRecord
from storage.store import ResultStore


@dataclass(frozen=True)
class FieldSpec:
    """How one config field is shown: ``widget`` is text, number, integer, bool, choice or list."""

    name: str
    widget: str
    default: Any
    required: bool
    choices: tuple[Any, ...] = ()
    description: str = ""
    optional: bool = False


class LaunchError(ValueError):
    """The form is invalid; ``fields`` maps each offending field to its message."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def _widget(annotation: Any) -> tuple[str, tuple[Any, ...]]:
    if typing.get_origin(annotation) is Literal:
        return "choice", tuple(typing.get_args(annotation))
    if annotation is bool:
        return "bool", ()
    if annotation is int:
        return "integer", ()
    if annotation is float:
        return "number", ()
    if typing.get_origin(annotation) in (list, tuple):
        return "list", ()
    return "text", ()


def form_fields(kind: str) -> list[FieldSpec]:
    """The fields of a run kind's form, in declaration order, ``kind`` itself left out."""
    cls: type[BaseModel] = run_kinds()[kind]
    specs = []
    for name, info in cls.model_fields.items():
        if name == "kind":
            continue
        inner, optional = unwrap_optional(info.annotation)
        widget, choices = _widget(inner)
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        specs.append(
            FieldSpec(
                name=name,
                widget=widget,
                default=default,
                required=info.is_required(),
                choices=choices,
                description=info.description or "",
                optional=optional,
            )
        )
    return specs


def _coerce(spec: FieldSpec, raw: Any) -> Any:
    """Browser value → Python value; ``None`` means "leave the default"."""
    if spec.widget == "bool":
        if isinstance(raw, list):  # a checklist sends the ticked values
            return bool(raw)
        return bool(raw)
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    if spec.widget == "list":
        if isinstance(raw, list):
            return [str(v).strip() for v in raw if str(v).strip()]
        return [part.strip() for part in str(raw).split(",") if part.strip()]
    if spec.widget == "choice":
        for choice in spec.choices:  # choices may be ints; the dropdown may send strings
            if str(choice) == str(raw):
                return choice
        return raw
    if spec.widget == "integer" and isinstance(raw, float) and raw.is_integer():
        return int(raw)
    return raw.strip() if isinstance(raw, str) else raw


def build_config(kind: str, form_values: dict[str, Any]) -> dict[str, Any]:
    """Validate the form; returns the config as JSON-ready dict or raises ``LaunchError``."""
    kinds = run_kinds()
    if kind not in kinds:
        raise LaunchError({"kind": f"unknown run kind {kind!r}; choose one of {sorted(kinds)}"})
    data: dict[str, Any] = {"kind": kind}
    for spec in form_fields(kind):
        value = _coerce(spec, form_values.get(spec.name))
        if value is None and not spec.optional:
            if spec.required:
                data[spec.name] = None  # let pydantic name the missing field
            continue
        data[spec.name] = value
    try:
        kinds[kind].model_validate(data)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "kind"
            errors.setdefault(field, err["msg"])
        raise LaunchError(errors) from None
    return parse_run_config(data).model_dump(mode="json")


def enqueue(store: ResultStore, kind: str, form_values: dict[str, Any]) -> RunRecord:
    """Validate the form and enqueue the run; raises ``LaunchError`` naming the bad fields."""
    config = parse_run_config(build_config(kind, form_values))
    try:
        return enqueue_config(store, config)
    except LaunchRefused as exc:
        field, _, message = str(exc).partition(": ")
        raise LaunchError({field: message}) from None


def choices(store: ResultStore) -> tuple[list[str], list[str]]:
    """(stored model specs, stored prompt-set names) for the form's pickers."""
    specs = list(dict.fromkeys(m.spec for m in store.list_models()))
    return specs, [p.name for p in store.list_prompt_sets()]
