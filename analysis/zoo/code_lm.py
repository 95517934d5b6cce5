"""Recipe for ``zoo:code-6l``: a Llama-style causal LM trained on the Python standard library.

Corpus: the interpreter's own stdlib source (``analysis.zoo.code_corpus``), every 20th file held
out for validation. Tokenizer: byte-level BPE (4096 tokens, ``<bos>`` prepended) trained on the
training files. Model: 6 layers x 8 query heads (4 key/value heads, GQA), d_model 256, RMSNorm,
rotary positions, SwiGLU MLPs, context 256. Training rows are ``<bos>`` + 255 tokens read at a
random offset of the concatenated training files; AdamW with linear warm-up and cosine decay,
bf16 autocast on the CPU (fp32 master weights), fixed seeds. Validation loss and bits per byte are
measured on the held-out files in non-overlapping windows. The weights ship as fp16.

Rebuild with ``python -m analysis.zoo.train code-6l --threads 2`` (about 37 minutes on 2 cores).
"""

from __future__ import annotations

import logging
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Int
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge.sources.native.init import initialize_native_model
from transformer_lens.model_bridge.sources.native.model import NativeModel
from transformers import PreTrainedTokenizerFast

from analysis.zoo import TOKENIZER_DIR
from analysis.zoo.checkpoint import bridge_state_dict, save_zoo_model
from analysis.zoo.code_corpus import (
    VALIDATION_EVERY,
    corpus_files,
    corpus_hash,
    read_text,
    split_files,
    stdlib_root,
    train_bpe,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextRecipe:
    """A causal LM trained on real text: tokenizer size, model config and optimiser schedule."""

    name: str
    vocab_size: int
    tl_config: dict[str, Any]
    steps: int
    batch_size: int
    lr: float
    min_lr: float
    warmup: int
    weight_decay: float
    grad_clip: float
    eval_every: int
    eval_windows: int  # validation windows in the periodic (not the final) evaluation
    seed: int = 0


SEQ_LEN = 256

RECIPE = TextRecipe(
    name="code-6l",
    vocab_size=4096,
    tl_config={
        "d_model": 256,
        "d_head": 32,
        "n_heads": 8,
        "n_key_value_heads": 4,
        "n_layers": 6,
        "n_ctx": SEQ_LEN,
        "d_mlp": 768,
        "act_fn": "silu",
        "gated_mlp": True,
        "normalization_type": "RMS",
        "final_rms": True,
        "positional_embedding_type": "rotary",
        "rotary_dim": 32,
        "rotary_base": 10000,
    },
    steps=2400,
    batch_size=16,
    lr=2e-3,
    min_lr=1e-4,
    warmup=100,
    weight_decay=0.1,
    grad_clip=1.0,
    eval_every=200,
    eval_windows=64,
)


def encode_files(tok: PreTrainedTokenizerFast, files: list[Path]) -> Int[torch.Tensor, " n"]:
    """All files' tokens, concatenated in order (no specials)."""
    ids: list[int] = []
    for path in files:
        ids.extend(tok(read_text(path), add_special_tokens=False)["input_ids"])
    return torch.tensor(ids, dtype=torch.long)


def token_bytes(tok: PreTrainedTokenizerFast) -> Int[torch.Tensor, " d_vocab"]:
    """UTF-8 bytes each token stands for (byte-level BPE: one character per byte; specials 0)."""
    lengths = torch.zeros(len(tok), dtype=torch.long)
    specials = set(tok.all_special_ids)
    for token, index in tok.get_vocab().items():
        lengths[index] = 0 if index in specials else len(token)
    return lengths


def sample_rows(
    stream: Int[torch.Tensor, " n"], generator: torch.Generator, batch: int, bos: int
) -> Int[torch.Tensor, "batch pos"]:
    """``<bos>`` + 255 consecutive tokens read at random offsets of the training stream."""
    starts = torch.randint(0, len(stream) - SEQ_LEN, (batch,), generator=generator)
    body = stream[starts[:, None] + torch.arange(SEQ_LEN - 1)[None, :]]
    return torch.cat([torch.full((batch, 1), bos, dtype=torch.long), body], dim=1)


def validation_rows(stream: Int[torch.Tensor, " n"], bos: int) -> Int[torch.Tensor, "rows pos"]:
    """Non-overlapping ``<bos>`` + 255-token windows covering the validation stream."""
    n_rows = len(stream) // (SEQ_LEN - 1)
    body = stream[: n_rows * (SEQ_LEN - 1)].reshape(n_rows, SEQ_LEN - 1)
    return torch.cat([torch.full((n_rows, 1), bos, dtype=torch.long), body], dim=1)


def next_token_loss(model: NativeModel, rows: Int[torch.Tensor, "batch pos"]) -> torch.Tensor:
    """Summed next-token cross-entropy (nats) over the rows' 255 predictions each."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(rows[:, :-1])
    return torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1), reduction="sum"
    )


@torch.no_grad()
def evaluate(
    model: NativeModel, rows: Int[torch.Tensor, "rows pos"], nbytes: Int[torch.Tensor, " d_vocab"]
) -> dict[str, float]:
    """Mean loss per token (nats) and bits per byte over ``rows``."""
    model.eval()
    nats = 0.0
    for chunk in rows.split(32):
        nats += next_token_loss(model, chunk).item()
    model.train()
    n_tokens = rows[:, 1:].numel()
    n_bytes = int(nbytes[rows[:, 1:]].sum())
    return {"loss": nats / n_tokens, "bits_per_byte": nats / math.log(2) / n_bytes}


def learning_rate(recipe: TextRecipe, step: int) -> float:
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return recipe.min_lr + 0.5 * (recipe.lr - recipe.min_lr) * (1 + math.cos(math.pi * progress))


def full_tl_config(recipe: TextRecipe) -> dict[str, Any]:
    return {**recipe.tl_config, "d_vocab": recipe.vocab_size, "seed": recipe.seed}


def build_text_model(recipe: TextRecipe, folder: Path, threads: int) -> Path:
    """Train the recipe's tokenizer and model and write the zoo folder."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _build(recipe, folder, threads)
    finally:
        torch.set_num_threads(previous_threads)


def _build(recipe: TextRecipe, folder: Path, threads: int) -> Path:
    files = corpus_files()
    train_files, validation_files = split_files(files)
    tok = train_bpe(train_files, recipe.vocab_size, folder / TOKENIZER_DIR)
    bos = tok.bos_token_id
    train_stream = encode_files(tok, train_files)
    validation = validation_rows(encode_files(tok, validation_files), bos)
    nbytes = token_bytes(tok)
    tl_config = full_tl_config(recipe)
    cfg = TransformerBridgeConfig(**tl_config)
    torch.manual_seed(recipe.seed)
    model = NativeModel(cfg)
    initialize_native_model(model, cfg)
    model.train()
    generator = torch.Generator().manual_seed(recipe.seed + 1)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, betas=(0.9, 0.95), weight_decay=recipe.weight_decay
    )
    periodic = validation[:: max(1, len(validation) // recipe.eval_windows)][: recipe.eval_windows]
    curve: dict[str, list[float]] = {"step": [], "train_loss": [], "validation_loss": []}
    start = time.perf_counter()
    for step in range(recipe.steps):
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(recipe, step)
        rows = sample_rows(train_stream, generator, recipe.batch_size, bos)
        loss = next_token_loss(model, rows) / rows[:, 1:].numel()
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimiser.step()
        if step % recipe.eval_every == 0 or step == recipe.steps - 1:
            val = evaluate(model, periodic, nbytes)
            curve["step"].append(step)
            curve["train_loss"].append(round(loss.item(), 4))
            curve["validation_loss"].append(round(val["loss"], 4))
            log.info(
                "%s step %d train %.4f val %.4f (%.0f s)",
                recipe.name,
                step,
                loss.item(),
                val["loss"],
                time.perf_counter() - start,
            )
    wall_s = time.perf_counter() - start
    model.eval()
    final = evaluate(model, validation, nbytes)
    training = {
        "corpus": {
            "source": "Python standard library *.py "
            "(tests, idlelib and installed packages excluded)",
            "python_version": platform.python_version(),
            "stdlib_root": str(stdlib_root()),
            "files": len(files),
            "file_list_sha256": corpus_hash(files),
            "validation": f"every {VALIDATION_EVERY}th file ({len(validation_files)} files)",
            "train_tokens": len(train_stream),
            "validation_tokens": int(validation[:, 1:].numel()),
        },
        "tokenizer": {"kind": "byte-level BPE", "vocab_size": len(tok), "bos": tok.bos_token},
        "steps": recipe.steps,
        "batch_size": recipe.batch_size,
        "seq_len": SEQ_LEN,
        "lr": recipe.lr,
        "min_lr": recipe.min_lr,
        "warmup": recipe.warmup,
        "weight_decay": recipe.weight_decay,
        "grad_clip": recipe.grad_clip,
        "precision": "bf16 autocast, fp32 master weights; shipped as fp16",
        "seed": recipe.seed,
        "threads": threads,
        "wall_s": round(wall_s, 1),
        "validation_loss": round(final["loss"], 4),
        "validation_bits_per_byte": round(final["bits_per_byte"], 4),
        "curve": curve,
    }
    state = {
        key: value.to(torch.float16)
        for key, value in bridge_state_dict(model.state_dict(), recipe.vocab_size).items()
    }
    save_zoo_model(
        folder, name=recipe.name, tl_config=tl_config, alphabet="", state=state, training=training
    )
    log.info("built %s in %.0f s: validation %s -> %s", recipe.name, wall_s, final, folder)
    return folder
