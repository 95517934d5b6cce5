"""Callbacks called as plain functions on a real, seeded SQLite store (no browser, no Dash
request): what each returns for the inputs Dash would send, and that ``CALLBACKS`` lists and
wires every one of them."""

from __future__ import annotations

from pathlib import Path

import dash
import numpy as np
import pytest

from app import callbacks, ids
from app.callbacks import CALLBACKS, catalog, compare, heads, launch, router, runs, sae
from app.callbacks.wiring import Callback, ClientsideCallback, Fired
from app.services import sae_view
from app.services.context import WebContext
from storage.settings import load_settings
from tests.browser.seeding import MODEL, seed_all, seed_sweep

NO = dash.no_update


@pytest.fixture
def seeded(store):
    settings = load_settings()
    return WebContext.open(settings, store), seed_all(store, Path(settings.home) / "work")


def test_callbacks_lists_every_module_level_callback_once():
    modules = (catalog, compare, heads, launch, router, runs, sae, callbacks.circuits)
    modules += (callbacks.overlap, callbacks.explore)
    declared = [
        value
        for module in (*modules, callbacks.export)
        for value in vars(module).values()
        if isinstance(value, Callback | ClientsideCallback)
    ]
    assert len(CALLBACKS) == len(set(map(id, CALLBACKS)))
    assert {id(one) for one in declared} == {id(one) for one in CALLBACKS}


def test_a_new_app_gets_every_callback_wired(headlab_env, store):
    from app.web import create_app

    app = create_app(load_settings())
    assert len(app.callback_map) == len(CALLBACKS)  # server and clientside, one output set each


def test_heads_run_metric_and_head_click(seeded):
    ctx, s = seeded
    metric_options, metric, prompt_options, prompt, *_ = heads.pick_run(ctx, s.heads, None)
    assert metric in metric_options and "induction_score" in metric_options and prompt == 0
    figure, spec = heads.show_metric(ctx, "induction_score", s.heads)
    assert spec == {"kind": "head_heatmap", "run": s.heads, "metric": "induction_score"}
    assert figure["data"][0]["type"] == "heatmap"
    click = Fired(id=ids.HEADS_CLICK)
    out = heads.select_head(ctx, click, {"layer": 1, "head": 2}, None, 0, None, s.heads,
                            "induction_score", None)  # fmt: skip
    assert out[0] == [1, 2] and out[1] == "Head 1.2"
    assert out[3]["kind"] == "pattern" and (out[3]["layer"], out[3]["head"]) == (1, 2)
    key = Fired(id=ids.HEADS_KEY)
    moved = heads.select_head(ctx, key, None, {"key": "ArrowRight"}, 0, [1, 2], s.heads,
                              "induction_score", None)  # fmt: skip
    assert moved[0] == [1, 3]
    clamped = heads.select_head(ctx, click, {"layer": 9, "head": 9}, None, 0, None, s.heads,
                                "induction_score", None)  # fmt: skip
    assert clamped[0] == [1, 3]
    nothing = heads.select_head(ctx, Fired(id=ids.HEADS_PROMPT), None, None, 0, None, s.heads,
                                "induction_score", None)  # fmt: skip
    assert nothing == (NO,) * 9
    no_metric, none = heads.show_metric(ctx, None, s.heads)
    assert none is None and "stores no per-head metrics" in str(no_metric)


def test_runs_paging_cancel_and_delete(seeded):
    ctx, s = seeded
    assert runs.change_page(ctx, Fired(id=ids.RUNS_NEXT), 0, 1, None, None, 0) == 0  # one page
    assert runs.change_page(ctx, Fired(id=ids.RUNS_PREV), 1, 0, None, None, 0) == 0
    rerendered = Fired(id=ids.run_action_id(ids.RUN_CANCEL, s.queued), clicked=False)
    assert runs.cancel_run(ctx, rerendered, [None], 3) == (NO, NO)
    clicked = Fired(id=ids.run_action_id(ids.RUN_CANCEL, s.queued), clicked=True)
    assert runs.cancel_run(ctx, clicked, [1], 3) == (f"Cancel requested for run #{s.queued}.", 4)
    asked = runs.ask_delete(ctx, Fired(id=ids.run_action_id(ids.RUN_DELETE, s.dla), clicked=True),
                            [1])  # fmt: skip
    assert asked[0] is True and asked[2] == s.dla and "cannot be undone" in asked[1]
    assert runs.delete_run(ctx, 1, s.dla, 4) == (f"Deleted run #{s.dla}.", 5)
    text, counter = runs.delete_run(ctx, 1, s.dla, 5)
    assert str(s.dla) in text and "does not exist" in text and counter == 6
    table, interval_off, label, sweeps = runs.refresh_table(ctx, 0, None, None, 0, 0)
    assert label.endswith(f"of {ctx.store.count_runs()}")
    assert "No sweeps" in str(sweeps)
    sweep_id = seed_sweep(ctx.store)
    *_, sweeps = runs.refresh_table(ctx, 0, None, None, 0, 0)
    text = str(sweeps)
    assert "demo-seeds" in text and "2/2 ended" in text and f"/compare?sweep={sweep_id}" in text


def test_launch_submit_queues_a_sweep_from_the_sweep_fields(seeded):
    ctx, _ = seeded
    fields = ["model", "prompt_set", "seed", "sweep_models", "sweep_vary", "sweep_name"]
    fired = Fired(
        state_ids=(ids.LAUNCH_KIND, [ids.launch_field_id(f) for f in fields]),
        output_ids=([ids.launch_error_id(f) for f in fields], ids.LAUNCH_STATUS),
    )
    before = ctx.store.count_runs()
    values = [MODEL, "demo", 3, "", "max_prompts=2,4;repeat_length=5,6", "grid"]
    errors, status, style = launch.submit(ctx, fired, 1, "heads", values)
    assert style == "message ok" and "4 heads runs queued" in str(status), errors
    (sweep,) = ctx.store.list_sweeps()
    assert sweep.name == "grid" and sweep.spec["fixed"]["seed"] == 3
    configs = [r.config for r in ctx.store.sweep_runs(sweep.id)]
    assert {(c["max_prompts"], c["repeat_length"], c["seed"]) for c in configs} == {
        (2, 5, 3), (2, 6, 3), (4, 5, 3), (4, 6, 3)
    }  # fmt: skip
    bad = [MODEL, "demo", 3, "", "max_prompts=2,x", ""]
    errors, _, style = launch.submit(ctx, fired, 1, "heads", bad)
    assert style == "message error" and "max_prompts='x'" in errors[4]
    taken = [MODEL, "demo", 3, "", "max_prompts=2", "grid"]
    errors, _, style = launch.submit(ctx, fired, 1, "heads", taken)
    assert style == "message error" and "already exists" in errors[5]
    assert ctx.store.count_runs() == before + 4 and len(ctx.store.list_sweeps()) == 1


def test_compare_page_of_a_sweep(seeded):
    ctx, _ = seeded
    sweep_id = seed_sweep(ctx.store)
    figure, spec = compare.show_sweep(ctx, "induction_score", sweep_id)
    assert spec["kind"] == "compare_sweep" and len(spec["runs"]) == 2
    titles = [a["text"] for a in figure["layout"]["annotations"]]
    assert titles == [f"#{r} seed={s}" for r, s in zip(spec["runs"], (0, 1), strict=True)]
    empty, no_spec = compare.show_sweep(ctx, None, sweep_id)
    assert no_spec is None and "No finished run" in str(empty)


def test_launch_submit_puts_errors_next_to_their_fields(seeded):
    ctx, _ = seeded
    fields = ["model", "prompt_set"]
    fired = Fired(
        state_ids=(ids.LAUNCH_KIND, [ids.launch_field_id(f) for f in fields]),
        output_ids=([ids.launch_error_id(f) for f in fields], ids.LAUNCH_STATUS),
    )
    errors, text, style = launch.submit(ctx, fired, 1, "heads", ["nope:x", "demo"])
    assert errors[0] and not errors[1] and style == "message error"
    before = ctx.store.count_runs()
    errors, status, style = launch.submit(ctx, fired, 1, "heads", [MODEL, "demo"])
    assert errors == ["", ""] and style == "message ok"
    assert ctx.store.count_runs() == before + 1


def test_catalog_flows_enqueue_poll_and_show_the_outcome(seeded):
    ctx, _ = seeded
    add = Fired(id=ids.MODEL_ADD)
    bad = catalog.add_model(ctx, add, 1, None, "m", "nope:x", False, None)
    assert bad[1] == "message error" and bad[4:] == (None, True)
    queued = catalog.add_model(ctx, add, 1, None, "m", MODEL, False, None)
    run_id = queued[4]
    assert queued[1] == "message info" and isinstance(run_id, int) and queued[5] is False
    tick = Fired(id=ids.MODEL_POLL)
    waiting = catalog.add_model(ctx, tick, 1, 1, "m", MODEL, False, run_id)
    assert "queued" in str(waiting[0]) and waiting[5] is False
    ctx.store.claim_run(run_id, "w")
    ctx.store.fail_run(run_id, "ModelError: no such model\nTraceback…")
    failed = catalog.add_model(ctx, tick, 1, 2, "m", MODEL, False, run_id)
    assert failed[:2] == ("ModelError: no such model", "message error")
    assert failed[4:] == (None, True)
    idle = catalog.add_model(ctx, tick, 1, 3, "m", MODEL, False, None)
    assert idle == (NO, NO, NO, NO, NO, True)
    nothing = catalog.upload(ctx, Fired(id=ids.PROMPTS_UPLOAD), None, None, None, "s", MODEL, None)
    assert nothing == (NO,) * 7


def test_generate_needle_set_shows_field_errors_and_queues(seeded):
    ctx, _ = seeded
    submit = Fired(id=ids.PROMPTS_GEN_SUBMIT)
    bad = catalog.generate(ctx, submit, 1, None, "needle", 8, 0, MODEL, "nd", None,
                           6, 2, "32", "0, 2")  # fmt: skip
    assert bad[1] == "message error" and str(bad[0]).startswith("depths: ")
    queued = catalog.generate(ctx, submit, 1, None, "needle", 8, 0, MODEL, "nd", None,
                              6, 2, "32, 40", "0, 1")  # fmt: skip
    assert queued[1] == "message info" and isinstance(queued[5], int)
    config = ctx.store.get_run(queued[5]).config
    assert config["contexts"] == [32, 40] and config["depths"] == [0.0, 1.0]
    assert catalog.show_needle_fields(ctx, "needle") == {}
    assert catalog.show_needle_fields(ctx, "ioi") == {"display": "none"}


def test_sae_feature_pick_and_compare_metrics(seeded):
    ctx, s = seeded
    rows = [{"feature": 7}, {"feature": 3}]
    assert sae.pick_feature(ctx, Fired(), None, None, None, rows) == 7
    assert sae.pick_feature(ctx, Fired(), [1], None, None, rows) == 3
    cell = Fired(id=ids.SAE_FEATURES)
    assert sae.pick_feature(ctx, cell, [0], {"row": 1}, rows, rows) == 3
    metrics, metric = compare.pick_runs(ctx, s.heads, s.compare, "entropy")
    assert "entropy" in metrics and metric == "entropy"


def test_router_renders_pages_and_names_unknown_paths(seeded):
    ctx, s = seeded
    assert "no page at /nowhere" in str(router.render_page(ctx, "/nowhere"))
    assert f"#{s.heads}" in str(router.render_page(ctx, f"/heads?run={s.heads}"))
    with pytest.raises(dash.exceptions.PreventUpdate):
        router.render_page(ctx, None)


@pytest.mark.parametrize("damage", ["random bytes", "deleted"])
def test_a_corrupt_pattern_artifact_shows_a_message_not_a_500(seeded, damage):
    ctx, s = seeded
    path = Path(ctx.store.get_artifact(s.heads, "patterns.safetensors").path)
    size = path.stat().st_size
    path.unlink()  # the stored file is shared by content: replace it, never write through it
    if damage == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(size))
    out = heads.select_head(ctx, Fired(id=ids.HEADS_CLICK), {"layer": 1, "head": 2}, None, 0,
                            None, s.heads, "induction_score", None)  # fmt: skip
    message = "corrupt" if damage == "random bytes" else "missing"
    assert message in out[1] and "patterns.safetensors" in out[1]
    assert ctx.store.get_run(s.heads).status.value == "FINISHED"  # nothing else changes


def test_the_sae_page_asked_for_another_kind_of_run_says_so_and_shows_a_named_sae_run(seeded):
    # the picker names the run whose table and curves are shown; the note says why
    ctx, s = seeded
    state = sae_view.initial(ctx, str(s.heads))
    assert state["run"] == s.sae and state["features"]
    assert state["note"] == (
        f"Run #{s.heads} (heads, finished) is not a finished SAE run; "
        f"showing the newest SAE run, #{s.sae}."
    )
    assert sae_view.initial(ctx, "99999")["note"].startswith("There is no run #99999; showing")
    picked = sae.pick_run(ctx, s.sae)
    assert picked[0] and picked[-2:] == ("", "message empty")
    assert sae_view.initial(ctx, str(s.sae))["note"] == ""


def test_slider_scale_rounds_the_top_and_labels_round_values():
    from app.components.analysis_pages import slider_scale

    assert slider_scale(1.96257054801) == (2.0, {0.0: "0", 0.5: "0.5", 1.0: "1", 1.5: "1.5",
                                                 2.0: "2"})  # fmt: skip
    top, marks = slider_scale(0.0123)
    assert top == 0.015 and list(marks.values()) == ["0", "0.005", "0.01", "0.015"]
    assert slider_scale(0.0) == (1.0, {0.0: "0", 1.0: "1"})
    assert slider_scale(float("nan"))[0] == 1.0
