"""Views that must say what they show (issue 20, item 5), on a real seeded store: the Heads
page's per-position grid (token labels, no empty layer bands, grids of sibling runs, why there
are none), the Launch form's labels, required marks and success link, the Compare page's
selection naming its head, and SAE contexts shaded relative to each context's peak."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dash import html

from app import ids
from app.callbacks import launch as launch_callbacks
from app.callbacks.wiring import Fired
from app.components.sae_contexts import highlighted_contexts
from app.figures import heads as head_figures
from app.figures import sae as sae_figures
from app.services import heads_view
from app.services import launch as launch_service
from app.services.context import WebContext
from storage.records import HeadResultIn, RunOutput
from storage.settings import load_settings
from tests.browser.seeding import MODEL, PROMPTS, finished, seed_all

WIDE = 12  # positions of the seeded wide patch grid: longer than every seeded prompt


def wide_patch_rows(seed: int = 3) -> list[HeadResultIn]:
    """A patch run's rows: ``patch_z`` per head and per head and position over ``WIDE``."""
    rng = np.random.default_rng(seed)
    rows = [
        HeadResultIn("patch_z", la, h, float(rng.normal())) for la in range(2) for h in range(4)
    ]
    rows += [
        HeadResultIn("patch_z", la, h, float(rng.normal()), position=p)
        for la in range(2) for h in range(4) for p in range(WIDE)
    ]  # fmt: skip
    return rows


@pytest.fixture
def views(store):
    settings = load_settings()
    seeded = seed_all(store, Path(settings.home) / "work")
    ps = store.get_prompt_set("demo").id
    wide = finished(store, "patch", RunOutput(head_results=wide_patch_rows()), ps)
    bare_rows = [HeadResultIn("patch_z", la, h, 0.5) for la in range(2) for h in range(4)]
    bare = finished(store, "patch", RunOutput(head_results=bare_rows), ps)
    return WebContext.open(settings, store), seeded, wide, bare


def test_position_heatmap_labels_a_short_prompts_tokens_and_keeps_only_layers_with_values():
    import pandas as pd

    rows = [
        {"metric": "patch_z", "layer": 1, "head": 2, "position": p, "value": float(p)}
        for p in range(5)
    ]
    fig = head_figures.position_heatmap(pd.DataFrame(rows), "patch_z", tokens=["<s>", "a", "b"])
    assert list(fig.layout.xaxis.ticktext) == ["&lt;s&gt;", "a", "b", "3", "4"]
    assert fig.data[0].y0 == 1 and fig.data[0].y is None  # head 1.2's row is layer 1
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (1, 5) and not np.isnan(z).all(axis=1).any()
    gap = pd.DataFrame([{**r, "layer": la} for r in rows for la in (0, 3)])
    spread = head_figures.position_heatmap(gap, "patch_z")
    assert list(spread.data[0].y) == ["0", "3"] and spread.layout.yaxis.type == "category"
    nan = pd.DataFrame([{**rows[0], "value": float("nan")}])
    with pytest.raises(ValueError, match="undefined"):
        head_figures.position_heatmap(nan, "patch_z")


def test_heads_position_grid_of_a_head_has_its_layer_and_a_prompts_tokens(views):
    ctx, _, wide, _ = views
    view = heads_view.position_view(ctx, f"{wide}|patch_z", [1, 2])
    longest = max(range(len(PROMPTS)), key=lambda i: len(PROMPTS[i]))  # none covers 12
    assert view.spec is not None and view.spec["prompt"] == longest
    layout, trace = view.figure["layout"], view.figure["data"][0]
    assert trace["y0"] == 1 and "y" not in trace  # head 1.2's own layer, no empty layer-0 band
    assert np.asarray(view.figure["data"][0]["z"]["shape"].split(", "), dtype=int).tolist() == [
        1,
        WIDE,
    ]
    ticks = list(layout["xaxis"]["ticktext"])
    n = len(PROMPTS[longest])
    assert ticks[:n] == [t.replace("<", "&lt;").replace(">", "&gt;") for t in PROMPTS[longest]]
    assert ticks[n:] == [str(p) for p in range(n, WIDE)]
    assert layout["title"]["text"] == f"run #{wide} patch · patch_z · head 1.2 · tokens of prompt 2"


def test_a_run_without_per_position_results_offers_a_sibling_runs_or_says_why(views):
    ctx, seeded, wide, bare = views
    state = heads_view.initial(ctx, bare, None)
    values = [o["value"] for o in state.position_options]
    assert f"{wide}|patch_z" in values and f"{seeded.patch}|patch_resid" in values
    assert state.position is not None and state.position.figure is not None
    other = finished(ctx.store, "dla", RunOutput(head_results=[HeadResultIn("dla", 0, 0, 1.0)]),
                     None, model="zoo:greater-than-3l")  # fmt: skip
    lonely = heads_view.initial(ctx, other, None)
    assert lonely.position_options == [] and lonely.position is not None
    assert lonely.position.message.startswith(
        f"No per-position results in run #{other} or any finished run on model zoo:greater-than-3l"
    )


def test_an_unfinished_run_says_so_instead_of_no_metrics(views):
    ctx, seeded, _, _ = views
    state = heads_view.initial(ctx, seeded.queued, None)
    assert state.message.startswith(f"Run #{seeded.queued} (dla) is queued (0%)")
    failed = heads_view.initial(ctx, seeded.failed, None)
    assert "is failed: JobError: prompt 2 is longer" in failed.message


def test_launch_fields_have_human_labels_and_required_marks():
    assert launch_service.field_label("ig_steps") == "IG steps"
    assert launch_service.field_label("l1_coefficient") == "L1 coefficient"
    assert launch_service.field_label("lr") == "Learning rate"
    assert launch_service.field_label("d_sae") == "SAE width (d_sae)"
    assert launch_service.field_label("ig_steps", "Integration steps") == "Integration steps"
    circuit = {f.name: f for f in launch_service.form_fields("circuit")}
    assert circuit["ig_steps"].label == "IG steps"
    required = {k: [f.name for f in launch_service.form_fields(k) if f.required]
                for k in ("patch", "lens", "heads", "throughput")}  # fmt: skip
    assert required == {"patch": ["model", "prompt_set"], "lens": ["model", "prompt_set"],
                        "heads": ["model"], "throughput": ["model"]}  # fmt: skip
    with pytest.raises(launch_service.LaunchError) as missing:
        launch_service.build_config("patch", {"model": MODEL})
    assert missing.value.fields == {"prompt_set": "Prompt set is required for a patch run"}
    with pytest.raises(launch_service.LaunchError) as both:  # every bad field at once
        launch_service.build_config("patch", {"max_pairs": 0})
    assert both.value.fields == {
        "model": "Model is required for a patch run",
        "prompt_set": "Prompt set is required for a patch run",
        "max_pairs": "Input should be greater than or equal to 1",
    }
    with pytest.raises(launch_service.LaunchError) as own:  # the config's message, with its fix
        launch_service.build_config("lens", {"model": MODEL})
    assert own.value.fields["prompt_set"].startswith("the lens run needs a prompt set")
    with pytest.raises(launch_service.LaunchError) as across:
        launch_service.build_config("heads", {"model": MODEL, "device_map": "auto"})
    assert list(across.value.fields) == ["device_map"]  # a check across fields, on its field
    assert across.value.fields["device_map"].startswith("zoo models are tiny")


def test_launch_form_marks_required_fields_and_success_links_to_the_run(views):
    from app.components.launch import form

    ctx, _, _, _ = views
    layout = form(launch_service.form_fields("patch"), [MODEL], ["demo"])
    groups = [c for c in walk(layout) if getattr(c, "role", None) == "group"]
    marked = [g for g in groups if g.to_plotly_json()["props"].get("aria-required") == "true"]
    assert [g.to_plotly_json()["props"]["aria-label"] for g in marked] == ["Model", "Prompt set"]
    labels = [c for c in walk(layout) if isinstance(c, html.Label)]
    assert labels[0].title == "config field: model" and "*" in str(labels[0].children)
    fields = ["model", "steps", "batch", "seq_len"]
    fired = Fired(
        state_ids=(ids.LAUNCH_KIND, [ids.launch_field_id(f) for f in fields]),
        output_ids=([ids.launch_error_id(f) for f in fields], ids.LAUNCH_STATUS),
    )
    _, status, style = launch_callbacks.submit(ctx, fired, 1, "throughput", [MODEL, 1, 1, 8])
    run = ctx.store.list_runs(limit=1)[0]
    links = [c for c in walk(status) if getattr(c, "href", None)]
    assert style == "message ok" and links[0].href == f"/heads?run={run.id}"
    assert links[0].children == f"Open run #{run.id} →"


def test_sae_contexts_are_shaded_relative_to_their_own_peak_which_is_marked():
    contexts = [
        {"tokens": ["a", "b", "c"], "acts": [0.5, 4.0, -1.0], "max": 4.0},
        {"tokens": ["d", "e"], "acts": [0.2, 0.1], "max": 0.2},
    ]
    shade, peak, value = sae_figures.context_shading(contexts[1])
    assert shade == [1.0, 0.5] and peak == 0 and value == 0.2  # not washed out by 4.0
    rows = highlighted_contexts(contexts)
    first = [c for c in walk(rows[1]) if isinstance(c, html.Span)]
    peaks = [s for s in first if s.className == "tok peak"]
    assert [s.children for s in peaks] == ["b"] and peaks[0].style["backgroundColor"].endswith(
        "1.00)"
    )
    assert any(s.className == "peak-value" and s.children == "4" for s in first)
    fig = sae_figures.top_contexts(contexts)
    z = np.asarray(fig.data[0].z, dtype=float)
    np.testing.assert_allclose(np.nanmax(z, axis=1), [1.0, 1.0])
    assert fig.data[0].text[0][1] == "<b>b</b>" and len(fig.layout.shapes) == 2
    with pytest.raises(ValueError, match="differ in length"):
        sae_figures.context_shading({"tokens": ["a"], "acts": [1.0, 2.0]})


def walk(node: object):
    """Every component in a Dash component tree (or list of trees)."""
    if isinstance(node, list | tuple):
        for child in node:
            yield from walk(child)
        return
    if hasattr(node, "to_plotly_json"):
        yield node
        yield from walk(getattr(node, "children", None))
