"""Module-scoped pytest fixtures: the three tiny architectures and a patching prompt batch; the
logits DLA tests compare with."""

import pytest
import torch

from analysis.prompt_batch import pair_batch_from_tokens
from tests.analysis import heads_fixtures as F

ARCHS = ("native", "gpt2", "llama")


@pytest.fixture(scope="session", params=ARCHS)
def arch_model(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "native":
        return F.native_attn_only()
    if request.param == "gpt2":
        return F.gpt2_style(folder)
    return F.llama_style(folder)


def pair_batch(n_pairs: int = 3, n_pos: int = 6, corrupt_at: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(2, F.VOCAB, (n_pairs, n_pos), generator=g)
    corrupted = clean.clone()
    corrupted[:, corrupt_at] = (clean[:, corrupt_at] + 5) % (F.VOCAB - 2) + 2
    correct = torch.randint(2, F.VOCAB, (n_pairs,), generator=g)
    incorrect = (correct + 3) % (F.VOCAB - 2) + 2
    return pair_batch_from_tokens(
        clean.tolist(), corrupted.tolist(), correct.tolist(), incorrect.tolist(), pad_id=1
    )


def last_logits(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(the model's logits, and the pre-cap ones ``unembed(ln_final(resid_post))``) at each
    prompt's last position, [batch, vocab] each (equal without a final soft-cap)."""
    rows = torch.arange(batch.n_pairs)
    with torch.no_grad():
        logits, cache = model.run_with_cache(batch.clean)
        final = cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"][rows, batch.last]
        pre = model.unembed(model.ln_final(final[:, None]))[:, 0]
    return logits[rows, batch.last], pre


def dla_total(result) -> torch.Tensor:
    """The sum of every component of a ``DlaResult``, [batch]."""
    total = result.heads.sum((0, 1)) + result.embed + result.biases
    if result.mlps is not None:
        total = total + result.mlps.sum(0)
    if result.pos_embed is not None:
        total = total + result.pos_embed
    return total


def logit_diff(logits: torch.Tensor, batch) -> torch.Tensor:
    """logits[correct] - logits[incorrect] per prompt, for [batch, vocab] logits."""
    rows = torch.arange(batch.n_pairs)
    return logits[rows, batch.correct] - logits[rows, batch.incorrect]
