"""The Heads page on real ``lens`` runs (an induction set on the zoo's induction model): the
default metric, the prompt picker (the run's own prompts), and the selected head's lens
figures on the chosen prompt in the head detail, each with its spec for export; the trained
lens only where the run trained one."""

from __future__ import annotations

import dataclasses

import pytest

from app import ids
from app.callbacks import heads
from app.callbacks.wiring import Fired
from app.services import heads_view
from app.services.context import WebContext
from storage.settings import load_settings
from tests.app.lens_run import lens_runs
from tests.app.test_web_taxonomy import drawn_or_said, export_specs

KINDS = ["ov_lens", "logit_lens_tokens", "trained_lens_tokens"]


@pytest.fixture(scope="module")
def lens(tmp_path_factory):
    """(web context, trained run id, plain run id) on one store for the module."""
    home = tmp_path_factory.mktemp("lens-web") / "home"
    patch = pytest.MonkeyPatch()
    patch.setenv("HEADLAB_HOME", str(home))
    patch.delenv("HEADLAB_DB", raising=False)
    lab, trained, plain = lens_runs(home)
    yield WebContext.open(load_settings(), lab.store), trained, plain
    lab.close()
    patch.undo()


def test_lens_run_defaults_to_the_copy_score_and_offers_its_prompts(lens):
    ctx, run, _ = lens
    state = heads_view.choices(ctx, run, None)
    assert state.metric == "ov_copy_score"
    assert {"ov_copy_score", "ov_prompt_copy_score", "ov_lens_kl", "logit_lens_kl",
            "lens_kl"} <= set(state.metric_options)  # fmt: skip
    prompts = ctx.reader.prompt_tokens(run)
    assert [o["value"] for o in state.prompt_options] == list(range(len(prompts)))
    assert state.prompt_options[1]["label"].startswith("1: " + "".join(prompts[1])[:10])


def test_head_detail_has_the_heads_lens_figures_on_the_prompt(lens):
    ctx, run, plain = lens
    detail = heads_view.head_detail(ctx, run, 1, 2, 3)
    want = [{"kind": k, "run": run, "layer": 1, "head": 2, "prompt": 3} for k in KINDS]
    assert [v.spec for v in detail.figures] == want
    for view in detail.figures:
        drawn_or_said(view)
    out = heads.select_head(ctx, Fired(id=ids.HEADS_PROMPT), None, None, 3, [1, 2], run,
                            "ov_copy_score", None)  # fmt: skip
    assert out[0] == [1, 2]
    assert export_specs(out[8]) == {f"heads-head-{s['kind']}": s for s in want}
    without = heads_view.head_detail(ctx, plain, 0, 1, None)
    assert [v.name for v in without.figures] == KINDS[:2]
    assert all(v.spec["prompt"] == 0 for v in without.figures)


def test_other_runs_get_no_lens_figures(lens):
    ctx, run, _ = lens
    record = ctx.store.get_run(run)
    assert heads_view.lens_head_figures(ctx, record, 0, 0, 0)
    other = dataclasses.replace(record, kind="heads")
    assert heads_view.lens_head_figures(ctx, other, 0, 0, 0) == []


def test_a_lens_runs_attention_comes_only_from_a_heads_run_on_its_own_prompts(
    tmp_path, monkeypatch
):
    # the head detail's prompt picker lists the lens run's prompts: a heads run on another set
    # (its prompt i is another prompt) must not supply the pattern
    home = tmp_path / "home"
    monkeypatch.setenv("HEADLAB_HOME", str(home))
    monkeypatch.delenv("HEADLAB_DB", raising=False)
    lab, _, plain = lens_runs(home, n=2)
    try:
        ctx = WebContext.open(load_settings(), lab.store)
        lab.generate_prompts("induction", "zoo:induction-2l", n=2, name="other", seed=1)
        lab.run("heads", "zoo:induction-2l", "other", progress=False)
        assert ctx.reader.pattern_run(ctx.store.get_run(plain)) is not None  # the fallback
        detail = heads_view.head_detail(ctx, plain, 1, 2, 1)
        assert detail.pattern_spec is None
        own = lab.run("heads", "zoo:induction-2l", "ind", progress=False)
        ctx = WebContext.open(load_settings(), lab.store)  # a fresh reader: no cached choice
        detail = heads_view.head_detail(ctx, plain, 1, 2, 1)
        assert detail.pattern_spec == {"kind": "pattern", "run": own.record.id, "layer": 1,
                                       "head": 2, "prompt": 1}  # fmt: skip
    finally:
        lab.close()
