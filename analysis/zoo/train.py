"""Training the zoo models: a seeded next-token loop over a synthetic task.

Rebuild one with ``python -m analysis.zoo.train <name> [--out DIR]`` (default: the shipped folder
``analysis/zoo/models/<name>/``). A recipe (``analysis.zoo.<task>.RECIPE``, all listed in
``RECIPES``) gives the tokenizer alphabet, the TransformerLens-native config, the optimiser
settings and a batch sampler. Training uses the bare ``NativeModel`` (no hooks) with AdamW, on
``threads`` CPU threads; the weights, the torch RNG for init and the data generator are all
seeded, so a rebuild on the same machine and thread count reproduces the shipped weights.

A checkpoint (``CHECKPOINTS``: zoo name → the zoo model whose training run it stops early) is
the parent's recipe with fewer steps. Nothing in the loop depends on the total (no schedule,
one generator drawn once per step), so its weights are exactly the parent run's weights after
that many steps; its config's ``training`` names the parent and the step.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge.sources.native.init import initialize_native_model
from transformer_lens.model_bridge.sources.native.model import NativeModel

from analysis.zoo import MODELS_DIR, TOKENIZER_DIR, code_lm, greater_than, induction, zoo_names
from analysis.zoo.checkpoint import bridge_state_dict, save_zoo_model
from analysis.zoo.code_lm import TextRecipe, build_text_model
from analysis.zoo.task import Recipe, TaskBatch
from analysis.zoo.tokenizer import build_char_tokenizer, char_vocab

log = logging.getLogger(__name__)


RECIPES: dict[str, Recipe | TextRecipe] = {
    "induction-2l": induction.RECIPE,
    "greater-than-3l": greater_than.RECIPE,
    "code-6l": code_lm.RECIPE,
    "induction-2l-early": induction.EARLY_RECIPE,
}

# Earlier checkpoints of a zoo model's training run: checkpoint name -> the full run's name.
CHECKPOINTS: dict[str, str] = {"induction-2l-early": "induction-2l"}


def load_recipe(name: str) -> Recipe | TextRecipe:
    if name not in RECIPES:
        raise ValueError(f"unknown zoo model {name!r}; the zoo has: {', '.join(zoo_names())}")
    return RECIPES[name]


def full_tl_config(recipe: Recipe) -> dict[str, Any]:
    """The recipe's config with the vocabulary size filled in from the alphabet."""
    return {**recipe.tl_config, "d_vocab": len(char_vocab(recipe.alphabet)), "seed": recipe.seed}


def masked_loss(model: NativeModel, batch: TaskBatch) -> torch.Tensor:
    logits = model(batch.tokens[:, :-1])
    losses = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), batch.tokens[:, 1:].reshape(-1), reduction="none"
    )
    mask = batch.loss_mask.reshape(-1).to(losses.dtype)
    return (losses * mask).sum() / mask.sum()


def train_native(
    recipe: Recipe,
    steps: int | None = None,
    after_step: Callable[[int, NativeModel], None] | None = None,
) -> tuple[NativeModel, dict[str, Any]]:
    """Train a NativeModel from the recipe; returns it and a log of losses. ``after_step(n,
    model)`` is called after the n-th optimiser step (n = 1, 2, ...), e.g. to save snapshots."""
    vocab = char_vocab(recipe.alphabet)
    cfg = TransformerBridgeConfig(**full_tl_config(recipe))
    torch.manual_seed(recipe.seed)
    model = NativeModel(cfg)
    initialize_native_model(model, cfg)
    generator = torch.Generator().manual_seed(recipe.seed + 1)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    n_steps = recipe.steps if steps is None else steps
    curve: dict[str, list[float]] = {"step": [], "loss": []}
    for step in range(n_steps):
        loss = masked_loss(model, recipe.sample(generator, recipe.batch_size, vocab))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if after_step is not None:
            after_step(step + 1, model)
        if step % 100 == 0 or step == n_steps - 1:
            curve["step"].append(step)
            curve["loss"].append(round(loss.item(), 5))
            log.info("%s step %d loss %.4f", recipe.name, step, loss.item())
    model.eval()
    return model, curve


def build_zoo_model(name: str, out: Path | None = None, threads: int = 1) -> Path:
    """Train zoo model ``name`` and write its folder (config, weights, tokenizer)."""
    recipe = load_recipe(name)
    folder = out or MODELS_DIR / name
    if isinstance(recipe, TextRecipe):
        return build_text_model(recipe, folder, threads)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        build_char_tokenizer(recipe.alphabet, folder / TOKENIZER_DIR)
        start = time.perf_counter()
        model, curve = train_native(recipe)
        wall_s = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous_threads)
    tl_config = full_tl_config(recipe)
    training = {
        "steps": recipe.steps,
        "batch_size": recipe.batch_size,
        "lr": recipe.lr,
        "weight_decay": recipe.weight_decay,
        "seed": recipe.seed,
        "threads": threads,
        "wall_s": round(wall_s, 1),
        "curve": curve,
    }
    if name in CHECKPOINTS:
        training |= {"checkpoint_of": CHECKPOINTS[name], "step": recipe.steps}
    state = bridge_state_dict(model.state_dict(), tl_config["d_vocab"])
    save_zoo_model(
        folder,
        name=name,
        tl_config=tl_config,
        alphabet=recipe.alphabet,
        state=state,
        training=training,
    )
    log.info("built %s in %.1f s -> %s", name, wall_s, folder)
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train a headlab zoo model.")
    parser.add_argument("name", choices=zoo_names())
    parser.add_argument("--out", type=Path, default=None, help="folder (default: shipped one)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build_zoo_model(args.name, args.out, args.threads)


if __name__ == "__main__":
    main()
