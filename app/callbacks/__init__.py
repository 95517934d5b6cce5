"""Thin callbacks: parse the inputs, make one store/service call, build with one pure builder.

Each callback is a module-level function (``app.callbacks.wiring.callback``), callable and
unit-tested as a plain function; ``CALLBACKS`` lists every one, and ``attach_callbacks`` wires
them all to one Dash app instance.
"""

from __future__ import annotations

import dash

from app.callbacks import (
    catalog,
    circuits,
    compare,
    explore,
    export,
    heads,
    launch,
    overlap,
    router,
    runs,
    sae,
)
from app.callbacks.wiring import Callback, ClientsideCallback
from app.services.context import WebContext

CALLBACKS: tuple[Callback | ClientsideCallback, ...] = (
    router.gate_url,
    router.render_page,
    export.export_figure,
    runs.refresh_table,
    runs.change_page,
    runs.cancel_run,
    runs.ask_delete,
    runs.delete_run,
    runs.runs_csv,
    launch.pick_kind,
    launch.upload_file,
    launch.submit,
    catalog.preview,
    catalog.add_model,
    catalog.upload,
    catalog.show_needle_fields,
    catalog.generate,
    heads.pick_run,
    heads.show_metric,
    heads.select_head,
    heads.outline_head,
    heads.show_positions,
    circuits.slider_limits,
    circuits.show_circuits,
    circuits.show_curves,
    overlap.show_overlap,
    sae.pick_run,
    sae.pick_feature,
    sae.show_feature,
    compare.pick_runs,
    compare.pick_prompts,
    compare.show,
    compare.select_mover,
    compare.follow_mover,
    compare.show_sweep,
    explore.submit,
    explore.fill_prompt,
    explore.follow_run,
    explore.show_focus,
    explore.show_overlay,
    explore.show_dla,
    explore.show_lens,
)


def attach_callbacks(app: dash.Dash, ctx: WebContext) -> None:
    """Wire every callback to ``app``; each server callback gets ``ctx`` first."""
    for one in CALLBACKS:
        one.attach(app, ctx)
