"""``zoo:induction-2l-early``: the training run of ``zoo:induction-2l`` stopped after 150 steps.

It is the same run (recipe, seed, data and optimiser), its weights are what the recipe gives
after 150 steps, and it is the checkpoint before the emergence: its layer-1 heads are not yet
induction heads, the shipped induction-2l's are.
"""

from __future__ import annotations

import dataclasses
import json

import torch
from safetensors.torch import load_file

from analysis import heads as head_stats
from analysis.models import load_model
from analysis.zoo import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    checkpoint_label,
    checkpoint_of,
    induction,
    zoo_folder,
)
from analysis.zoo.checkpoint import bridge_state_dict, read_zoo_config
from analysis.zoo.evidence import repeat_prompts
from analysis.zoo.train import CHECKPOINTS, RECIPES, full_tl_config, train_native

EARLY, LATE = "induction-2l-early", "induction-2l"


def test_the_early_checkpoint_is_the_full_recipe_stopped_early():
    early, late = RECIPES[EARLY], RECIPES[LATE]
    assert CHECKPOINTS == {EARLY: LATE}
    assert dataclasses.replace(early, name=LATE, steps=late.steps) == late
    assert early.steps == induction.EARLY_STEP == 150 < late.steps
    assert checkpoint_of(EARLY) == (LATE, 150) and checkpoint_of(LATE) is None
    assert checkpoint_label(f"zoo:{EARLY}") == "step 150 of induction-2l"
    assert checkpoint_label(f"zoo:{LATE}") is None and checkpoint_label(f"hf:/x/{EARLY}") is None
    config, parent = read_zoo_config(zoo_folder(EARLY)), read_zoo_config(zoo_folder(LATE))
    assert config["tl_config"] == parent["tl_config"] and config["alphabet"] == parent["alphabet"]
    training = config["training"]
    assert (training["checkpoint_of"], training["step"], training["steps"]) == (LATE, 150, 150)
    # the losses both runs logged at the steps they share are the same numbers
    shared = {s: loss for s, loss in zip(*parent["training"]["curve"].values(), strict=True)}
    for step, loss in zip(*training["curve"].values(), strict=True):
        if step in shared:
            assert loss == shared[step], step


def test_training_fewer_steps_is_the_start_of_a_longer_run():
    """Nothing in the loop depends on the step count: N steps == the first N of a longer run."""
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def keep(step, model):
        if step == 4:
            snapshots[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    longer, _ = train_native(induction.RECIPE, steps=7, after_step=keep)
    shorter, _ = train_native(induction.RECIPE, steps=4)
    for key, value in shorter.state_dict().items():
        assert torch.equal(value, snapshots[4][key]), key
    later = longer.state_dict()
    assert any(not torch.equal(later[k], snapshots[4][k]) for k in later)  # it trained on


def test_the_shipped_weights_are_what_the_recipe_gives_after_150_steps():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # as the shipped model was trained
    try:
        model, _ = train_native(RECIPES[EARLY])  # type: ignore[arg-type]
    finally:
        torch.set_num_threads(previous)
    d_vocab = full_tl_config(RECIPES[EARLY])["d_vocab"]  # type: ignore[arg-type]
    trained = bridge_state_dict(model.state_dict(), d_vocab)
    shipped = load_file(str(zoo_folder(EARLY) / WEIGHTS_FILE))
    assert set(trained) == set(shipped)
    for key, value in shipped.items():
        # bitwise on the machine that built it; other CPU builds round differently. The key
        # biases get no gradient (softmax ignores them), so AdamW steps them on rounding noise
        atol = 0.05 if key.endswith("attn.k.bias") else 1e-4
        torch.testing.assert_close(trained[key], value, atol=atol, rtol=0, msg=key)


def _scores(name: str) -> dict[str, torch.Tensor]:
    model = load_model(f"zoo:{name}")
    prompts = repeat_prompts(n=8)
    patterns, tokens = [], []
    for text in prompts:
        row = model.to_tokens(text)
        patterns += head_stats.prompt_patterns(model, row, [row.shape[1]])
        tokens.append(row[0])
    stats = [head_stats.pattern_statistics(p, t) for p, t in zip(patterns, tokens, strict=True)]
    return {k: torch.stack([s[k] for s in stats]).mean(0) for k in stats[0]}


def test_the_induction_heads_form_between_the_checkpoints():
    early, late = _scores(EARLY), _scores(LATE)
    # MECHANISM.md of induction-2l-early: 0.076-0.085 at step 150, 0.68-0.73 at step 1400
    assert early["induction_score"][1].max() < 0.1 and late["induction_score"][1].min() > 0.6
    assert early["induction_score"][0].max() < 0.1 and late["induction_score"][0].max() < 0.1
    # no previous-token head yet; a0.h2 is one at step 1400
    assert early["prev_token_score"][0].max() < 0.1 and late["prev_token_score"][0, 2] > 0.8
    moved = (late["induction_score"] - early["induction_score"]).abs()
    assert moved[1].min() > 5 * moved[0].max()


def test_the_checkpoint_folder_is_a_complete_zoo_model():
    folder = zoo_folder(EARLY)
    assert json.loads((folder / CONFIG_FILE).read_text())["name"] == EARLY
    assert (folder / "MECHANISM.md").read_text().startswith(f"# zoo:{EARLY}")
    assert not (folder / "ground_truths").exists()  # no circuit before the emergence
