"""Launching runs from the web form: describe each run kind's fields, validate, enqueue.

Forms are generated from the pydantic config classes in ``analysis.configs`` (torch-free), so a
new run kind appears on the Launch page without any UI code. Values arrive from the browser as
strings, numbers, booleans or lists; they are coerced per field, validated by the config class
(every error mapped back to its field) and only then enqueued. Nothing is written on error.
"""

from __future__ import annotations

import base64
import re
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from analysis.configs import parse_run_config, run_kinds, unwrap_optional
from analysis.model_specs import looks_like_path
from app.launching import LaunchRefused, enqueue_config
from app.sweeps import SweepSpec, enqueue_sweep, parse_assignments
from storage.errors import Conflict, InvalidInput
from storage.records import RunRecord, SweepRecord
from storage.store import ResultStore
from storage.uploads import is_upload_ref

REFERENCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def is_reference_name(value: str) -> bool:
    """``zoo`` or the name of a reference circuit shipped with headlab (never a file name)."""
    from analysis.circuits.ground_truth import REFERENCE_DIR

    return value == "zoo" or (
        REFERENCE_NAME.match(value) is not None and (REFERENCE_DIR / f"{value}.json").is_file()
    )


@dataclass(frozen=True)
class FieldSpec:
    """How one config field is shown: ``widget`` is text, number, integer, bool, choice or list;
    ``label`` is the field's name for people (``field_label``)."""

    name: str
    widget: str
    default: Any
    required: bool
    choices: tuple[Any, ...] = ()
    description: str = ""
    optional: bool = False
    server_file: str | None = None  # "text" / "json" / "folder": a file the worker opens
    label: str = ""


# words of config field names written as people write them (the rest: first letter capital)
WORDS = {
    "acdc": "ACDC", "bos": "BOS", "dfa": "DFA", "dla": "DLA", "eap": "EAP", "hf": "HF",
    "id": "ID", "ig": "IG", "kl": "KL", "kv": "KV", "l1": "L1", "lr": "learning rate",
    "mlp": "MLP", "ov": "OV", "qk": "QK", "sae": "SAE",
}  # fmt: skip
# whole names that read better otherwise (symbols keep their case)
LABELS = {
    "d_sae": "SAE width (d_sae)", "dtype": "dtype", "k": "k", "n": "Number of pairs",
    "tau": "τ (tau)", "top_k": "Top k",
}  # fmt: skip


def field_label(name: str, title: str | None = None) -> str:
    """A config field's label: its pydantic ``title`` when it has one, else its name in words
    (``ig_steps`` → "IG steps", ``l1_coefficient`` → "L1 coefficient", ``lr`` → "Learning
    rate")."""
    if title:
        return title
    if name in LABELS:
        return LABELS[name]
    text = " ".join(WORDS.get(w, w) for w in name.split("_") if w)
    return text[:1].upper() + text[1:]


def needs_prompt_set(cls: type[BaseModel], kind: str) -> bool:
    """Whether a run of ``kind`` cannot run without a prompt set although the field has a
    default: its config refuses a config without one (``prompt_set: … needs a prompt set``),
    or it reads the set's pairs (it has ``max_pairs``; the job refuses to start without a
    set). Either-or checks (``text`` or a prompt set) do not make it required."""
    if "prompt_set" not in cls.model_fields:
        return False
    if "max_pairs" in cls.model_fields:
        return True
    try:
        cls.model_validate({"kind": kind, "model": "zoo:induction-2l"})
    except ValidationError as exc:
        for err in exc.errors():
            message = str(err["msg"]).removeprefix("Value error, ")
            if message.startswith("prompt_set:") or "needs a prompt set" in message:
                return True
    return False


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
    needed = {"prompt_set"} if needs_prompt_set(cls, kind) else set()
    specs = []
    for name, info in cls.model_fields.items():
        if name == "kind":
            continue
        inner, optional = unwrap_optional(info.annotation)
        widget, choices = _widget(inner)
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        server_file = extra.get("server_file")
        specs.append(
            FieldSpec(
                name=name,
                widget=widget,
                default=default,
                required=info.is_required() or name in needed,
                choices=choices,
                description=info.description or "",
                optional=optional,
                server_file=str(server_file) if server_file else None,
                label=field_label(name, info.title),
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
    missing: dict[str, str] = {}
    specs = form_fields(kind)
    for spec in specs:
        value = _coerce(spec, form_values.get(spec.name))
        if value is None and spec.required and spec.widget != "bool":
            missing[spec.name] = f"{spec.label} is required for a {kind} run"
        if value is None and not spec.optional:
            if spec.required:
                data[spec.name] = None  # let pydantic name the missing field
            continue
        data[spec.name] = value
    names = {spec.name for spec in specs}
    errors: dict[str, str] = {}
    try:
        kinds[kind].model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "kind"
            message = str(err["msg"]).removeprefix("Value error, ")
            named, _, rest = message.partition(": ")
            if not err["loc"] and named in names and rest:
                field, message = named, rest  # a check across fields that names its field
            errors.setdefault(field, message)
    for name, message in missing.items():  # the config's own message first, when it has one
        if name not in errors or _pydantic_missing(errors[name]):
            errors[name] = message
    if errors:
        raise LaunchError(errors)
    return parse_run_config(data).model_dump(mode="json")


def _pydantic_missing(message: str) -> bool:
    """Whether a field's error is pydantic's own for an empty value (the form says "required")."""
    return message.startswith(("Input should be", "Field required"))


def server_path_errors(
    store: ResultStore, kind: str, form_values: dict[str, Any]
) -> dict[str, str]:
    """Fields of a web form that would make the server open a path the client chose.

    A web user names files only by upload reference (``storage.uploads``): ``text``/``json``
    file fields take ``upload:<sha256>`` (``json`` also a reference name such as ``zoo``), a
    ``folder`` field is CLI-only, and a model given as a local folder must already be
    registered (``headlab models add`` on the server). Checked before anything else, so a
    refused path is never even looked at."""
    errors: dict[str, str] = {}
    for spec in form_fields(kind):
        value = form_values.get(spec.name)
        if spec.server_file is None or value is None or str(value).strip() == "":
            continue
        value = str(value).strip()
        if spec.server_file == "folder":
            errors[spec.name] = (
                "a server folder cannot be chosen from the web; use the CLI or the Python API"
            )
        elif is_upload_ref(value):
            try:
                store.uploads.resolve(value)
            except InvalidInput as exc:
                errors[spec.name] = str(exc)
        elif not (spec.server_file == "json" and is_reference_name(value)):
            errors[spec.name] = (
                "server paths are not accepted from the web; upload the file (the button beside "
                "the field) or use the CLI"
            )
    model = str(form_values.get("model") or "").strip()
    local = model.startswith("hf:") and looks_like_path(model[3:])
    if local and model not in {m.spec for m in store.list_models()}:
        errors["model"] = (
            "a local model folder cannot be chosen from the web; register it on the server "
            "with `headlab models add hf:/path/to/folder`, then pick it here"
        )
    return errors


def refuse_server_paths(store: ResultStore, kind: str, form_values: dict[str, Any]) -> None:
    """``LaunchError`` naming every field of ``server_path_errors``; call before validating."""
    if kind in run_kinds() and (refused := server_path_errors(store, kind, form_values)):
        raise LaunchError(refused)


SWEEP_FIELDS = ("sweep_models", "sweep_prompt_sets", "sweep_vary", "sweep_name")


def launch(store: ResultStore, kind: str, form_values: dict[str, Any]) -> RunRecord | SweepRecord:
    """The Launch form's submit: the run (``enqueue``) or, when a sweep field is filled in, the
    sweep of it over more models, prompt sets or option values."""
    form_values = dict(form_values)
    sweep_values = {k: form_values.pop(k, None) for k in SWEEP_FIELDS}
    if not any(_coerce_given(v) for v in sweep_values.values()):
        return enqueue(store, kind, form_values)
    refuse_server_paths(store, kind, form_values)
    return _enqueue_sweep(store, kind, form_values, sweep_values)


def enqueue(store: ResultStore, kind: str, form_values: dict[str, Any]) -> RunRecord:
    """Validate the form and enqueue the run; raises ``LaunchError`` naming the bad fields.
    Server paths chosen by the client are refused first (``server_path_errors``)."""
    refuse_server_paths(store, kind, form_values)
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


def save_upload(store: ResultStore, contents: str, filename: str) -> str:
    """A ``dcc.Upload`` value stored in the uploads; returns its ``upload:`` reference."""
    _, _, payload = contents.partition(",")
    try:
        data = base64.b64decode(payload, validate=True)
    except ValueError:
        raise InvalidInput(f"upload {filename!r} is not valid base64 data") from None
    return store.uploads.save(data, filename)


def _enqueue_sweep(
    store: ResultStore, kind: str, form_values: dict[str, Any], sweep: dict[str, Any]
) -> SweepRecord:
    """The form's run as the first of a sweep: its model and prompt set plus the sweep's, its
    other options fixed except those varied."""
    base = build_config(kind, form_values)
    extra_models = [m.strip() for m in str(sweep["sweep_models"] or "").split(",") if m.strip()]
    for model in extra_models:
        refused = server_path_errors(store, kind, {**form_values, "model": model})
        if "model" in refused:
            raise LaunchError({"sweep_models": f"{model}: {refused['model']}"})
    try:
        vary_items = [v for v in str(sweep["sweep_vary"] or "").split(";") if v.strip()]
        vary = parse_assignments(vary_items, "vary", many=True)
    except LaunchRefused as exc:
        raise LaunchError({"sweep_vary": str(exc)}) from None
    prompt_sets = [base["prompt_set"]] if base.get("prompt_set") else []
    prompt_sets += [p for p in sweep["sweep_prompt_sets"] or [] if p not in prompt_sets]
    skip = {"kind", "model", "prompt_set", *vary}
    fields = {spec.name for spec in form_fields(kind)}
    fixed = {
        k: v
        for k, v in base.items()
        if k not in skip and k in fields and _coerce_given(form_values.get(k))
    }
    spec = SweepSpec(
        kind=kind,
        models=list(dict.fromkeys([base["model"], *extra_models])),
        prompt_sets=prompt_sets,
        fixed=fixed,
        vary=vary,
    )
    name = str(sweep["sweep_name"] or "").strip() or None
    try:
        sweep_record, _ = enqueue_sweep(store, spec, name)
    except LaunchRefused as exc:
        raise LaunchError({"sweep_vary": str(exc)}) from None
    except (Conflict, InvalidInput) as exc:
        raise LaunchError({"sweep_name": str(exc)}) from None
    return sweep_record


def _coerce_given(raw: Any) -> bool:
    """Whether the user filled a form field in (so the sweep fixes it; else the default holds)."""
    return raw not in (None, "", [])
