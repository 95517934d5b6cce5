"""Module-scoped pytest fixtures: the three tiny architectures and a patching prompt batch."""

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
