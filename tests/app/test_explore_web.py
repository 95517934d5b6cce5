"""Explore from the API, the CLI and the page's callbacks, on real runs of the zoo's induction
model: one forward per distinct text (identical submissions reuse the run), the stored
patterns behind every panel, exports of the explore figure kinds, one-line errors."""

from __future__ import annotations

import base64
import json
import zlib

import numpy as np
import pytest
from sqlalchemy import create_engine, update

import headlab
from app.callbacks import explore as callbacks
from app.figures.explore import pooled
from app.pages import explore as page
from app.services import explore
from app.services.context import WebContext
from app.services.figures import EXPORT_KINDS, build_figure
from storage.orm import runs
from tests.app.cli_run import run_cli

EXPLORE_KINDS = {"explore_heads": "explore-heads", "explore_overlay": "explore-overlay",
                 "explore_lens": "explore-lens"}  # fmt: skip
MODEL = "zoo:induction-2l"
TEXT = "abcdeabcd"


@pytest.fixture(scope="module")
def explored(tmp_path_factory):
    """(lab, web context, the run of TEXT with next token 'x') on one store for the module."""
    home = tmp_path_factory.mktemp("explore") / "home"
    patch = pytest.MonkeyPatch()
    patch.setenv("HEADLAB_HOME", str(home))
    patch.delenv("HEADLAB_DB", raising=False)
    lab = headlab.Lab(home)
    lab.store.add_model("induction-2l", MODEL, {})  # registered, as the page needs
    ex = lab.explore(TEXT, model=MODEL, next_token="x")
    yield lab, WebContext.open(lab.settings, lab.store), ex
    lab.close()
    patch.undo()


def _png_pixels(uri: str) -> tuple[int, int]:
    data = base64.b64decode(uri.removeprefix("data:image/png;base64,"))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return width, height


def test_the_same_text_reuses_the_run_and_another_runs_once(explored):
    lab, ctx, ex = explored
    again = lab.explore(TEXT, model=MODEL, next_token="x")
    assert (again.id, again.reused) == (ex.id, True)
    run, reused = explore.submit_from_page(ctx.store, MODEL, TEXT, "x")
    assert (run.id, reused) == (ex.id, True)
    other = lab.explore(TEXT, model=MODEL)  # no next token: another config, another run
    assert other.id != ex.id and not other.reused
    assert lab.store.count_runs(kind="explore") == 2


def test_api_data_is_the_stored_run(explored):
    _, _, ex = explored
    assert ex.tokens == ["<bos>", *TEXT]
    assert ex.patterns.shape == (2, 4, 10, 10)
    assert np.allclose(ex.patterns.sum(-1), 1.0, atol=2e-3)  # float16 rows
    assert np.array_equal(ex.attention(1, 2).matrix, ex.patterns[1, 2])
    scores = ex.scores
    assert len(scores) == 8 and "induction_score" in scores and "dla_next" in scores
    assert ex.targets["next"]["text"] == "x"
    dla = ex.dla("next")
    assert dla.loc[1, 2] == pytest.approx(float(scores.loc[(1, 2), "dla_next"]))
    lens = ex.logit_lens
    assert list(lens[lens.target == "top"]["read"]) == ["resid_pre 0", "resid_pre 1", "final"]


def test_every_panel_draws_from_the_stored_patterns(explored):
    _, ctx, ex = explored
    _, status, _, _ = callbacks.follow_run(ctx, 1, {"run": ex.id})
    assert status == f"Run #{ex.id} ran in {ex.record.elapsed_s:.2f} s; 10 tokens."
    thumbs = explore.thumbnails(ctx.reader, ex.id)
    assert [len(row) for row in thumbs] == [4, 4]
    assert _png_pixels(thumbs[1][2]) == (10, 10)
    figure, spec, title, spans = callbacks.show_focus(
        ctx, {"layer": 1, "head": 2, "locked": True}, {"pos": 8}, "from", ex.id
    )
    assert title == "Head 1.2 (locked)"
    assert spec == {"kind": "pattern", "run": ex.id, "layer": 1, "head": 2, "prompt": 0}
    assert figure["layout"]["title"]["text"] == "head 1.2"
    row = ex.patterns[1, 2, 8]
    assert [s.title for s in spans] == [f"token {i}: attention {v:.3f}" for i, v in enumerate(row)]
    assert "selected" in spans[8].className
    _, _, _, to = callbacks.show_focus(ctx, {"layer": 0, "head": 3}, {"pos": 2}, "to", ex.id)
    assert [s.title for s in to][5] == f"token 5: attention {ex.patterns[0, 3, 5, 2]:.3f}"
    overlay, overlay_spec = callbacks.show_overlay(ctx, ["1.0", "0.2"], {"pos": 8}, "from", ex.id)
    assert overlay_spec["heads"] == ["1.0", "0.2"]
    assert [t["name"] for t in overlay["data"]] == ["head 1.0", "head 0.2"]
    assert len({t["line"]["color"] for t in overlay["data"]}) == 2
    _, dla_spec = callbacks.show_dla(ctx, "top", ex.id)
    assert dla_spec == {"kind": "head_heatmap", "run": ex.id, "metric": "dla_top"}
    lens = callbacks.show_lens(ctx, ex.id)
    top = ex.targets["top"]["text"]
    assert [t["name"] for t in lens["data"]] == [f"top next token {top}", "next token x"]


def test_thumbnails_keep_a_one_key_stripe_when_pooled():
    pattern = np.zeros((200, 200), dtype=np.float32)
    pattern[:, 7] = 1.0
    small = pooled(pattern, 96)
    assert small.shape == (67, 67) and small[:, 2].min() == 1.0 and small.sum() == 67
    assert zlib.crc32(b"") == 0  # zlib present: the PNG writer's only dependency


def test_explore_figure_kinds_build_and_export(explored, tmp_path, capsys):
    _, ctx, ex = explored
    for kind, name in EXPLORE_KINDS.items():
        assert EXPORT_KINDS[name].name == kind
        assert build_figure(ctx.reader, {"kind": kind, "run": ex.id}).data, kind
    heads = build_figure(ctx.reader, {"kind": "explore_heads", "run": ex.id})
    assert len(heads.data) == 8
    assert np.allclose(np.asarray(heads.data[6].z), ex.patterns[1, 2])
    out = tmp_path / "overlay.svg"
    code, stdout, err = run_cli(capsys, "export", "figure", str(ex.id), "--kind",
                                "explore-overlay", "--out", str(out), "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["path"] == str(out)
    assert out.read_text()[:200].lstrip().startswith("<svg")


def test_bad_input_is_one_line(explored, capsys):
    lab, ctx, _ = explored
    assert callbacks.submit(ctx, 1, "   ", MODEL, "")["error"] == (
        "text: it is empty; type or paste some text"
    )
    assert callbacks.submit(ctx, 1, "abc", "zoo:code-6l", "")["error"] == (
        "model: 'zoo:code-6l' is not registered; add it on the Models page "
        "(or `headlab models add SPEC`)"
    )
    _, status, kind, disabled = callbacks.follow_run(ctx, 1, {"error": "text: nope", "t": 1})
    assert (status, kind, disabled) == ("text: nope", "message warn", True)
    with pytest.raises(headlab.HeadlabError, match=r"^model: unknown zoo model 'nope'; the zoo"):
        lab.explore("abc", model="zoo:nope")
    with pytest.raises(headlab.RunFailed) as failed:
        lab.explore("ab" * 40, model=MODEL)
    assert str(failed.value).endswith(
        "text: it is 81 tokens, more than the model's context of 64; shorten it"
    )
    _, status, kind, _ = callbacks.follow_run(ctx, 1, {"run": failed.value.run_id})
    assert kind == "message warn" and status.endswith("context of 64; shorten it")
    code, _, err = run_cli(
        capsys, "run", "explore", "--model", MODEL, "--text", "abc", "--prompts", "x"
    )
    assert code != 0 and "text: give the text or --prompts NAME, not both" in err
    assert "Traceback" not in err


def test_cli_options_come_from_the_config(capsys):
    code, out, _ = run_cli(capsys, "run", "explore", "--help")
    assert code == 0
    for option in ("--text", "--next-token", "--prompt-index", "--max-tokens"):
        assert option in out


def test_page_opens_a_stored_run_and_names_a_wrong_one(explored):
    _, ctx, ex = explored
    layout = str(page.build(ctx, {"run": str(ex.id)}))
    assert "explore-thumbs" in layout and f"'run': {ex.id}" in layout
    assert "is not a run id" in str(page.build(ctx, {"run": "abc"}))
    assert "not an explore run" not in str(page.build(ctx, {}))


def test_a_prompt_of_a_set_fills_the_text_box(explored):
    lab, ctx, _ = explored
    lab.generate_prompts("induction", MODEL, n=3, name="explore-ind")
    text, _, _ = callbacks.fill_prompt(ctx, "explore-ind", 2)
    assert text == lab.pairs("explore-ind")["clean"].iloc[2]
    _, status, kind = callbacks.fill_prompt(ctx, "explore-ind", 7)
    assert (status, kind) == ("prompt #: set 'explore-ind' has prompts 0..2", "message warn")
    ex = lab.explore(None, model=MODEL, prompt_set="explore-ind", prompt_index=2)
    assert ex.text == text and ex.summary["source"] == "prompt 2 of set explore-ind"


def test_a_finished_run_of_another_code_version_is_not_reused(explored):
    """After an upgrade the same text runs again (the stored DLA, say, may have been computed
    differently); the new run is reused from then on. Last in the module: it adds a run."""
    lab, _, ex = explored
    version = lab.store.get_run(ex.id).code_version
    engine = create_engine(lab.store.db_url)
    with engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == ex.id).values(code_version="git:old"))
    try:
        again = lab.explore(TEXT, model=MODEL, next_token="x")
        assert again.id != ex.id and not again.reused
        assert lab.explore(TEXT, model=MODEL, next_token="x").id == again.id
    finally:
        with engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == ex.id).values(code_version=version))
        engine.dispose()
