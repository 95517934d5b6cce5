"""Checkpoint comparison on real ``heads`` runs: known answers, the service, ``Lab.movers`` and
``headlab compare heads``.

Two known answers:

- Two local HF folders registered as models, identical but for layer 1 head 2's W_Q and W_K.
  No other head reads a1.h2 (layer 0 comes before it, the other layer-1 heads read the residual
  stream before layer 1), and the OV-circuit scores do not involve W_Q/W_K, so every other head
  shows exactly no difference in any score, and a1.h2 moves and tops the movers.
- The zoo's early and late checkpoints of induction-2l (steps 150 and 1400 of one training
  run): the induction score of the four layer-1 heads moves most (the induction heads form in
  between), each by more than any layer-0 head.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import headlab
from analysis.zoo.tokenizer import build_char_tokenizer
from app.services.compare import CompareError, default_pair, movers, run_pair
from app.services.context import WebContext
from storage.settings import load_settings
from tests.app.cli_run import run_cli

CHARS = "abcdefghijklmnopqrstuvwxyz .,"
CHANGED = (1, 2)  # the head whose W_Q / W_K the edited checkpoint changes
HEADS_OPTIONS = {"repeated_sequences": 6, "repeat_length": 8, "progress": False}
ZOO_OPTIONS = {"repeated_sequences": 8, "repeat_length": 12, "progress": False}


def gpt2_folder(folder: Path, n_heads: int = 4) -> Path:
    from transformers import AutoModelForCausalLM, GPT2Config

    cfg = GPT2Config(
        n_embd=32, n_layer=2, n_head=n_heads, n_positions=32, vocab_size=len(CHARS) + 3
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(folder)
    build_char_tokenizer(CHARS, folder)
    return folder


def edit_head(base: Path, out: Path, layer: int, head: int) -> Path:
    """A copy of ``base`` with the query and key weights of one head replaced."""
    from transformers import AutoModelForCausalLM

    shutil.copytree(base, out)
    model: Any = AutoModelForCausalLM.from_pretrained(out)
    attn = model.transformer.h[layer].attn.c_attn  # Conv1D: [d_model, 3 d_model], q | k | v
    d_model, d_head = model.config.n_embd, model.config.n_embd // model.config.n_head
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for part in (0, 1):  # q, k
            cols = slice(part * d_model + head * d_head, part * d_model + (head + 1) * d_head)
            attn.weight[:, cols] = 3 * torch.randn(d_model, d_head, generator=generator)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def lab_runs(tmp_path_factory):
    """A home with heads runs on: the two HF checkpoints, a 2-head model, the zoo's early and
    late induction-2l, and a dla run (another kind)."""
    root = tmp_path_factory.mktemp("compare")
    base = gpt2_folder(root / "base")
    edited = edit_head(base, root / "edited", *CHANGED)
    narrow = gpt2_folder(root / "narrow", n_heads=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HEADLAB_HOME", str(root / "home"))
        patch.delenv("HEADLAB_DB", raising=False)
        lab = headlab.Lab(root / "home")
        for name, folder in (("ckpt-base", base), ("ckpt-edited", edited), ("narrow", narrow)):
            lab.add_model(f"hf:{folder}", name=name)
        runs = {
            name: lab.run("heads", f"hf:{folder}", **HEADS_OPTIONS).id
            for name, folder in (("base", base), ("edited", edited), ("narrow", narrow))
        }
        for name, spec in (("early", "zoo:induction-2l-early"), ("late", "zoo:induction-2l")):
            runs[name] = lab.run("heads", spec, **ZOO_OPTIONS).id
        lab.generate_prompts("induction", "zoo:induction-2l", n=4, name="ind4")
        runs["dla"] = lab.run("dla", "zoo:induction-2l", "ind4", progress=False).id
        yield lab, runs, WebContext.open(load_settings(), lab.store)


def test_a_head_with_unchanged_weights_shows_no_difference(lab_runs):
    lab, runs, _ = lab_runs
    metrics = sorted(set(lab.get_run(runs["base"]).heads()["metric"]))
    moved = set()
    for metric in metrics:
        table = lab.movers(runs["base"], runs["edited"], metric, top=8)
        assert len(table) == 8
        others = table[[(r.layer, r.head) != CHANGED for r in table.itertuples()]]
        assert (others["delta"] == 0).all(), (metric, others)
        assert (others["a"] == others["b"]).all() and (others["rank_a"] > 0).all()
        changed = table[[(r.layer, r.head) == CHANGED for r in table.itertuples()]]
        if float(changed["delta"].abs().iloc[0]) > 1e-6:
            moved.add(metric)
            assert (table.iloc[0]["layer"], table.iloc[0]["head"]) == CHANGED, metric
    # W_Q/W_K change where a1.h2 attends, not what it copies
    assert {"entropy", "prev_token_score", "induction_score", "bos_mass"} <= moved
    assert "ov_copying_score" not in moved


def test_the_induction_heads_emerge_between_the_zoo_checkpoints(lab_runs):
    lab, runs, _ = lab_runs
    table = lab.movers(runs["early"], runs["late"], "induction_score", top=8)
    top4 = {(int(r.layer), int(r.head)) for r in table.head(4).itertuples()}
    assert top4 == {(1, 0), (1, 1), (1, 2), (1, 3)}
    assert (table.head(4)["delta"] > 0.2).all() and (table.head(4)["a"] < 0.1).all()
    layer0 = table[table["layer"] == 0]
    assert float(layer0["delta"].abs().max()) < 0.25 * float(table.head(4)["delta"].min())
    assert list(table.head(4)["rank_b"].sort_values()) == [1, 2, 3, 4]
    # the same numbers as the runs' own rows: B − A of each head
    a = lab.get_run(runs["early"]).heads("induction_score").set_index(["layer", "head"])["value"]
    b = lab.get_run(runs["late"]).heads("induction_score").set_index(["layer", "head"])["value"]
    for row in table.itertuples():
        key = (row.layer, row.head)
        assert row.a == a[key] and row.b == b[key] and row.delta == pytest.approx(b[key] - a[key])


def test_pairs_name_their_models_and_refuse_other_shapes_and_kinds(lab_runs):
    lab, runs, ctx = lab_runs
    pair = run_pair(ctx.reader, runs["early"], runs["late"])
    assert pair.cross_model and pair.problem() == ""
    assert pair.relation().startswith(
        "Checkpoint comparison: induction-2l-early → induction-2l (both 2 layers × 4 heads"
    )
    assert "induction-2l-early is step 150 of induction-2l" in pair.relation()
    shape = run_pair(ctx.reader, runs["base"], runs["narrow"]).problem()
    assert "ckpt-base has 2 layers × 4 heads" in shape and "narrow has 2 layers × 2 heads" in shape
    with pytest.raises(CompareError, match="same layer × head shape"):
        movers(ctx.reader, runs["base"], runs["narrow"], "entropy")
    with pytest.raises(CompareError, match="is heads and run .* is dla"):
        movers(ctx.reader, runs["late"], runs["dla"], "entropy")
    with pytest.raises(CompareError, match="metrics both have: bos_mass, duplicate_token"):
        movers(ctx.reader, runs["early"], runs["late"], "nope")
    with pytest.raises(headlab.HeadlabError, match="same layer × head shape"):
        lab.compare(runs["base"], runs["narrow"], "entropy")
    with pytest.raises(headlab.HeadlabError, match="does not exist"):
        lab.movers(runs["base"], 10_000, "entropy")


def test_the_page_opens_on_the_checkpoint_pair(lab_runs):
    lab, runs, ctx = lab_runs
    listed = lab.models().set_index("name")["checkpoint_of"]  # what `models list` shows
    assert listed["induction-2l-early"] == "step 150 of induction-2l"
    assert listed[["induction-2l", "ckpt-base"]].isna().all()
    assert default_pair(ctx, None, None) == (runs["early"], runs["late"])
    assert default_pair(ctx, str(runs["base"]), str(runs["narrow"])) == (
        runs["base"],
        runs["narrow"],
    )


def test_cli_lists_the_movers_and_names_what_is_wrong(lab_runs, capsys, monkeypatch):
    lab, runs, _ = lab_runs
    monkeypatch.setenv("HEADLAB_HOME", str(lab.settings.home))
    early, late = str(runs["early"]), str(runs["late"])
    code, out, _ = run_cli(capsys, "compare", "heads", early, late, "--metric", "induction_score",
                       "--top", "3")  # fmt: skip
    assert code == 0
    assert "Checkpoint comparison: induction-2l-early → induction-2l" in out
    assert out.count("│ 1.") == 3
    code, out, _ = run_cli(capsys, "compare", "heads", early, late, "--metric", "entropy", "--json")
    found = json.loads(out)
    assert code == 0 and found["model_a"] == "induction-2l-early" and found["shape"] == [2, 4]
    assert len(found["movers"]) == 8 and set(found["movers"][0]) == {
        "layer", "head", "a", "b", "delta", "rank_a", "rank_b"
    }  # fmt: skip
    bad = {
        "does not exist": (early, "999", "--metric", "entropy"),
        "is heads and run": (late, str(runs["dla"]), "--metric", "entropy"),
        "2 layers × 2 heads": (str(runs["base"]), str(runs["narrow"]), "--metric", "entropy"),
        "metrics both have: bos_mass": (early, late, "--metric", "nope"),
        "--top must be at least 1": (early, late, "--metric", "entropy", "--top", "0"),
    }
    for expected, args in bad.items():
        code, out, err = run_cli(capsys, "compare", "heads", *args)
        assert code == 1 and out == "", expected
        assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
        assert "Traceback" not in err


def find(component, component_id: str):
    """The component with ``component_id`` in a Dash layout tree, else None."""
    if getattr(component, "id", None) == component_id:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            hit = find(child, component_id)
            if hit is not None:
                return hit
    return None


def test_compare_page_callbacks_on_a_checkpoint_pair(lab_runs):
    from app import ids
    from app.callbacks import compare as callbacks
    from app.pages import compare as compare_page

    _, runs, ctx = lab_runs
    early, late = runs["early"], runs["late"]
    layout = compare_page.build(ctx, {})
    assert (find(layout, ids.COMPARE_RUN_A).value, find(layout, ids.COMPARE_RUN_B).value) == (
        early,
        late,
    )
    assert find(layout, ids.COMPARE_PROMPT).value == 0
    out = callbacks.show(ctx, "induction_score", early, late)
    side, side_spec, diff, _, chart, chart_spec, rows, note, css = out
    assert side["data"] and diff["data"] and chart["data"]
    assert chart_spec == {"kind": "compare_movers", "a": early, "b": late,
                          "metric": "induction_score", "top_k": 10}  # fmt: skip
    assert note.startswith("Checkpoint comparison: induction-2l-early → induction-2l")
    assert css == "message info"
    assert len(rows) == 8 and {r["id"] for r in rows[:4]} == {"1.0", "1.1", "1.2", "1.3"}
    assert rows[0]["rank in B"] in (1, 2) and rows[0]["Δ (B − A)"] > 0.2
    title, fig_a, spec_a, fig_b, spec_b, highlight = callbacks.select_mover(
        ctx, {"row": 3, "column": 0, "row_id": "1.2"}, rows, 1, early, late
    )
    assert title_text(title) == "Head 1.2: attention in A and in B"
    assert title[0].to_plotly_json()["props"]["data-head"] == "1.2"  # the chart follows it
    assert spec_a == {"kind": "pattern", "run": early, "layer": 1, "head": 2, "prompt": 1}
    assert spec_b == {**spec_a, "run": late}
    assert fig_a["data"][0]["z"] != fig_b["data"][0]["z"]  # the head changed its attention
    assert '{id} = "1.2"' in highlight[0]["if"]["filter_query"]
    top = callbacks.select_mover(ctx, None, rows, 0, early, late)
    assert title_text(top[0]) == f"Head {rows[0]['id']}: attention in A and in B"
    options, value = callbacks.pick_prompts(ctx, early, late, 5)
    assert len(options) == ZOO_OPTIONS["repeated_sequences"] and value == 5
    assert callbacks.pick_prompts(ctx, early, runs["dla"], 5) == ([], None)


def test_compare_page_refuses_an_incompatible_pair(lab_runs):
    from app.callbacks import compare as callbacks
    from app.services.compare import mover_pattern_specs

    _, runs, ctx = lab_runs
    assert callbacks.pick_runs(ctx, runs["base"], runs["narrow"], "entropy") == ([], None)
    out = callbacks.show(ctx, "entropy", runs["base"], runs["narrow"])
    assert out[6] == [] and out[1] is None and out[5] is None
    assert "2 layers × 4 heads" in out[7] and "2 layers × 2 heads" in out[7]
    assert out[8] == "message warn"
    late, dla = runs["late"], runs["dla"]
    assert "is heads and run" in callbacks.show(ctx, "entropy", late, dla)[7]
    specs = mover_pattern_specs(ctx.reader, late, dla, (1, 2), 0)
    assert (
        specs[0]["run"] == late
        and specs[1] == f"Run #{dla} stores no attention patterns (heads runs do)."
    )


def test_the_movers_figure_exports_like_the_page_draws_it(lab_runs):
    from app.export.errors import ExportError
    from app.services.figures import FigureRequest, build_figure, run_figure

    _, runs, ctx = lab_runs
    pair = [runs["early"], runs["late"]]
    fig = run_figure(ctx.reader, pair, "movers", FigureRequest(metric="induction_score", top_k=4))
    page = build_figure(ctx.reader, {"kind": "compare_movers", "a": pair[0], "b": pair[1],
                                     "metric": "induction_score", "top_k": 4})  # fmt: skip
    assert fig.to_plotly_json() == page.to_plotly_json()
    assert sorted(fig.data[0].y) == ["head 1.0", "head 1.1", "head 1.2", "head 1.3"]
    assert "induction-2l-early → induction-2l" in fig.layout.title.text
    with pytest.raises(ExportError, match="needs --metric; metrics both runs have: bos_mass"):
        run_figure(ctx.reader, pair, "movers", FigureRequest())
    with pytest.raises(ExportError, match="same layer × head shape"):
        run_figure(ctx.reader, [runs["base"], runs["narrow"]], "movers",
                   FigureRequest(metric="entropy"))  # fmt: skip


def title_text(title: object) -> str:
    """The text of a title given as a string or as a list of strings and components."""
    parts = title if isinstance(title, list) else [title]
    return "".join(p if isinstance(p, str) else str(p.children) for p in parts)
