"""Prefix skip (``SuffixReplay``): same numbers as exact patching, on three architectures."""

import pytest
import torch

from analysis.patching.exact import exact_patch, prepare
from analysis.patching.fast import fast_patch, groups_by_start
from analysis.patching.replay import BlockReplay
from analysis.patching.strategies import PatchTarget
from analysis.prompt_batch import pair_batch_from_tokens
from tests.analysis import heads_fixtures as F
from tests.analysis.arch_fixtures import arch_model  # noqa: F401

TOL = 1e-4
KINDS = [("z", True), ("q", True), ("k", True), ("v", True), ("pattern", True),
         ("resid_pre", True), ("z", False), ("k", False), ("pattern", False)]  # fmt: skip


def ragged_batch(seed: int = 0):
    """Three right-padded pairs of 7, 5 and 6 tokens, corrupted at position 1 and 3."""
    g = torch.Generator().manual_seed(seed)
    clean, corrupted = [], []
    for n in (7, 5, 6):
        c = torch.randint(2, F.VOCAB, (n,), generator=g).tolist()
        k = list(c)
        for p in (1, 3):
            k[p] = (c[p] + 7) % (F.VOCAB - 2) + 2
        clean.append(c)
        corrupted.append(k)
    correct = torch.randint(2, F.VOCAB, (3,), generator=g)
    incorrect = (correct + 3) % (F.VOCAB - 2) + 2
    return pair_batch_from_tokens(clean, corrupted, correct.tolist(), incorrect.tolist(), pad_id=1)


def effective(model, kind: str) -> bool:
    return kind != "pattern" or model.cfg.architecture != "TransformerLensNative"


def test_prefix_skip_is_supported_on_every_architecture(arch_model):  # noqa: F811
    batch = ragged_batch()
    replay = BlockReplay(arch_model, batch.corrupted, batch.last)
    suffix = replay.suffix()
    assert suffix.supported, suffix.reason
    assert suffix.max_start == 4  # the shortest prompt's last position
    for kind, _ in KINDS:
        assert suffix.handles(kind) == effective(arch_model, kind)


@pytest.mark.parametrize(
    "direction, kinds",
    [("denoising", KINDS), ("noising", [("z", True), ("k", True), ("resid_pre", True)])],
)
def test_prefix_skip_equals_exact_on_a_ragged_batch(arch_model, direction, kinds):  # noqa: F811
    setup = prepare(arch_model, ragged_batch(), "logit_diff", direction)
    replay = BlockReplay(arch_model, setup.target_tokens, setup.batch.last)
    for kind, per_pos in kinds:
        if not effective(arch_model, kind):
            continue
        target = PatchTarget(kind, per_pos)
        fast = fast_patch(setup, target, replay=replay, chunk=5)
        exact = exact_patch(setup, target)
        assert (fast.values - exact.values).abs().max() <= TOL, (kind, per_pos)
        assert fast.normalised.abs().max() > 1e-3, (kind, per_pos)  # the patch does something


def test_positions_beyond_a_short_prompt_leave_it_unchanged(arch_model):  # noqa: F811
    # position 6 exists only in the 7-token prompt: the others read the unpatched corrupted run
    setup = prepare(arch_model, ragged_batch(), "logit_diff")
    target = PatchTarget("z", True)
    fast = fast_patch(setup, target, positions=[5, 6], chunk=3)
    exact = exact_patch(setup, target, positions=[5, 6])
    assert (fast.values - exact.values).abs().max() <= TOL


def test_block_replay_without_prefix_skip_equals_exact(arch_model):  # noqa: F811
    setup = prepare(arch_model, ragged_batch(), "logit_diff")
    replay = BlockReplay(arch_model, setup.target_tokens, setup.batch.last)
    replay.suffix().supported = False  # force the all-positions replay
    target = PatchTarget("v", True)
    fast = fast_patch(setup, target, replay=replay, chunk=4)
    assert (fast.values - exact_patch(setup, target).values).abs().max() <= TOL


def test_self_check_rejects_a_kernel_that_differs_from_the_model(arch_model):  # noqa: F811
    batch = ragged_batch()
    suffix = BlockReplay(arch_model, batch.corrupted, batch.last).suffix()
    assert suffix._self_check() == (True, "ok")
    suffix.scale *= 2  # a wrong attention scale must be caught, not used
    ok, reason = suffix._self_check()
    assert not ok and "differs from the model" in reason


def test_variants_are_grouped_by_the_first_position_they_change():
    target = PatchTarget("pattern", True)
    variants = [(h, p) for h in range(2) for p in range(3)]  # TransformerLens order
    groups = groups_by_start(target, variants, chunk=4)
    assert [s for s, _ in groups] == [0, 1, 2]
    assert [[variants[i] for i in idx] for _, idx in groups][1] == [(0, 1), (1, 1)]
    assert groups_by_start(target, variants, chunk=4, by_start=False) == [
        (0, [0, 1, 2, 3]),
        (0, [4, 5]),
    ]
