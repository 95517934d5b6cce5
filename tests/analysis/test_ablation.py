"""Ablation on the fast engine == hooked full forwards; the replacement values are right."""

import pytest
import torch

from analysis.ablation import ablate_heads, ablate_heads_exact, ablation_source
from analysis.prompt_batch import pair_batch_from_tokens
from tests.analysis.arch_fixtures import arch_model, pair_batch  # noqa: F401


@pytest.mark.parametrize("method", ["zero", "mean", "resample"])
def test_fast_ablation_equals_exact(arch_model, method):  # noqa: F811
    batch = pair_batch()
    fast = ablate_heads(arch_model, batch, method, chunk=3)
    exact = ablate_heads_exact(arch_model, batch, method)
    assert (fast - exact).abs().max() <= 1e-4
    assert fast.abs().max() > 1e-3


def test_mean_uses_real_positions_only():
    batch = pair_batch_from_tokens([[1, 2, 3], [4, 5]], [[1, 2, 4], [4, 6]], [1, 1], [2, 2])
    z = torch.ones(2, 3, 1, 1)
    z[1, 2] = 100.0  # padding position of prompt 1
    mean = ablation_source("mean", z, batch)
    assert mean[0, 2].item() == 1.0 and mean[1, 0].item() == 1.0
    assert torch.equal(ablation_source("resample", z, batch)[0], z[1])
    with pytest.raises(ValueError, match="unknown ablation 'x'"):
        ablation_source("x", z, batch)
