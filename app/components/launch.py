"""Launch page layout: a run-kind picker and a form generated from the kind's config fields,
with each field's validation error shown right under it."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from app import ids
from app.components.common import card, message, page
from app.services.launch import FieldSpec
from storage.uploads import MAX_UPLOAD_BYTES

MODELS_DATALIST = "launch-models-datalist"


def field_input(spec: FieldSpec, models: list[str], prompt_sets: list[str]) -> Any:
    fid = ids.launch_field_id(spec.name)
    if spec.name == "prompt_set":
        return dcc.Dropdown(
            id=fid, options=prompt_sets, value=spec.default, placeholder="choose a prompt set"
        )
    if spec.name == "model":
        value = spec.default or (models[0] if models else None)
        return dcc.Input(
            id=fid,
            value=value,
            list=MODELS_DATALIST,
            className="input wide",
            placeholder="zoo:induction-2l",
            required=spec.required,
        )
    if spec.server_file == "folder":
        return dcc.Input(
            id=fid, value=None, disabled=True, className="input wide", placeholder="CLI / API only"
        )
    if spec.server_file is not None:
        hint = "upload a file" + (" or a name (zoo)" if spec.server_file == "json" else "")
        return html.Div(
            [
                dcc.Input(
                    id=fid,
                    value=spec.default,
                    className="input wide",
                    placeholder=hint,
                ),
                dcc.Upload(
                    html.Button("Upload…", className="btn secondary", type="button"),
                    id=ids.launch_upload_id(spec.name),
                    max_size=MAX_UPLOAD_BYTES,
                    className="upload-inline",
                ),
            ],
            className="field-with-upload",
        )
    if spec.widget == "choice":
        return dcc.Dropdown(
            id=fid,
            options=[{"label": str(c), "value": c} for c in spec.choices],
            value=spec.default,
            clearable=spec.optional,
        )
    if spec.widget == "bool":
        return dcc.Checklist(
            id=fid,
            options=[{"label": " yes", "value": "yes"}],
            value=["yes"] if spec.default else [],
        )
    if spec.widget in ("integer", "number"):
        return dcc.Input(
            id=fid,
            type="number",
            value=spec.default,
            className="input",
            step=1 if spec.widget == "integer" else "any",
        )
    if spec.widget == "list":
        value = ", ".join(map(str, spec.default or []))
        return dcc.Input(id=fid, value=value, className="input wide", placeholder="comma-separated")
    return dcc.Input(id=fid, value=spec.default, className="input wide", required=spec.required)


REQUIRED_NOTE = "Fields marked * are required; the others have defaults."


def field_label(spec: FieldSpec) -> html.Label:
    """The field's human label (``FieldSpec.label``), a ``*`` when it is required; the config
    field's own name (as the CLI and the API spell it) is the label's tooltip."""
    parts: list[Any] = [spec.label or spec.name]
    if spec.required:
        parts.append(html.Span(" *", className="required-mark", title="required"))
    return html.Label(parts, className="form-label", title=f"config field: {spec.name}")


def form(specs: list[FieldSpec], models: list[str], prompt_sets: list[str]) -> html.Div:
    rows = []
    for spec in specs:
        required = {"aria-required": "true"} if spec.required else {}
        rows.append(
            html.Div(
                [
                    field_label(spec),
                    html.Div(
                        [
                            field_input(spec, models, prompt_sets),
                            html.Div(spec.description, className="form-help"),
                            html.Div(id=ids.launch_error_id(spec.name), className="form-error"),
                        ],
                        className="form-control",
                        role="group",
                        **{"aria-label": spec.label or spec.name, **required},  # type: ignore[arg-type]
                    ),
                ],
                className="form-row",
                **{"data-field": spec.name},  # type: ignore[arg-type]
            )
        )
    datalist = html.Datalist([html.Option(value=m) for m in models], id=MODELS_DATALIST)
    note = html.P(REQUIRED_NOTE, className="hint")
    return html.Div([note, *rows, sweep_section(prompt_sets), datalist], className="form")


SWEEP_HELP = {
    "sweep_models": "More model specs, comma-separated: the run is repeated on each.",
    "sweep_prompt_sets": "More prompt sets: the run is repeated on each.",
    "sweep_vary": "option=v1,v2 (several: separate with ;), e.g. method=eap,eap-ig; "
    "crossed with the models and prompt sets.",
    "sweep_name": "Default: <kind>-sweep-<n>.",
}


def sweep_section(prompt_sets: list[str]) -> html.Details:
    """Optional fields that turn the run into a sweep (one record, one run per combination)."""
    inputs = {
        "sweep_models": dcc.Input(
            id=ids.launch_field_id("sweep_models"),
            list=MODELS_DATALIST,
            className="input wide",
            placeholder="zoo:greater-than-3l, hf:owner/model",
        ),
        "sweep_prompt_sets": dcc.Dropdown(
            id=ids.launch_field_id("sweep_prompt_sets"),
            options=prompt_sets,
            multi=True,
            placeholder="none",
        ),
        "sweep_vary": dcc.Input(
            id=ids.launch_field_id("sweep_vary"),
            className="input wide",
            placeholder="method=eap,eap-ig",
        ),
        "sweep_name": dcc.Input(id=ids.launch_field_id("sweep_name"), className="input wide"),
    }
    rows = [
        html.Div(
            [
                html.Label(name.removeprefix("sweep_").replace("_", " "), className="form-label"),
                html.Div(
                    [
                        widget,
                        html.Div(SWEEP_HELP[name], className="form-help"),
                        html.Div(id=ids.launch_error_id(name), className="form-error"),
                    ],
                    className="form-control",
                ),
            ],
            className="form-row",
        )
        for name, widget in inputs.items()
    ]
    summary = html.Summary("Sweep: run it over more models, prompt sets or option values")
    return html.Details([summary, *rows], className="sweep-section", id="launch-sweep")


def launch_layout(kinds: list[str], kind: str | None, form_children: Any) -> html.Div:
    return page(
        "Launch a run",
        card(
            None,
            html.Div(
                [
                    html.Label("Run kind", className="form-label"),
                    dcc.Dropdown(
                        id=ids.LAUNCH_KIND,
                        options=kinds,
                        value=kind,
                        clearable=False,
                        className="kind-select",
                    ),
                ],
                className="form-row",
            ),
            html.Div(form_children, id=ids.LAUNCH_FORM),
            html.Div(
                [
                    html.Button("Validate and enqueue", id=ids.LAUNCH_SUBMIT, className="btn"),
                    message(None, id=ids.LAUNCH_STATUS),
                ],
                className="toolbar",
            ),
        ),
        subtitle="The form is validated before anything is queued; a worker picks the run up.",
    )
