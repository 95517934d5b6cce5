"""``fwd_hooks`` against the bridge's own ``model.hooks()``: the same activations seen and
replaced, aliases resolved, hooks gone afterwards, unknown names skipped."""

from __future__ import annotations

import torch

from analysis import hooks
from analysis.hook_context import fwd_hooks, hook_points
from tests.analysis import heads_fixtures as F


def test_fwd_hooks_equal_the_bridge_hooks() -> None:
    model = F.native_attn_only()
    tokens = torch.randint(2, F.VOCAB, (2, 5), generator=torch.Generator().manual_seed(0))
    seen: dict[str, list[torch.Tensor]] = {"bridge": [], "fast": []}

    def hook_list(key: str) -> list:
        def observe(t: torch.Tensor, hook) -> None:
            seen[key].append(t.detach().clone())

        def scale(t: torch.Tensor, hook) -> torch.Tensor:
            return 0.5 * t

        # an alias (compatibility-mode name) that changes q, and an observer after it
        return [(hooks.site("q", 1).name, scale), (hooks.site("pattern", 1).name, observe),
                ("no.such.hook", observe)]  # fmt: skip

    with torch.no_grad():
        plain = model(tokens)
        with model.hooks(fwd_hooks=hook_list("bridge")):
            want = model(tokens)
        with fwd_hooks(model, hook_list("fast")):
            got = model(tokens)
        after = model(tokens)
    assert not torch.allclose(want, plain)  # the hook changed the run
    assert torch.equal(got, want) and torch.equal(after, plain)
    assert len(seen["fast"]) == len(seen["bridge"]) == 1
    assert torch.equal(seen["fast"][0], seen["bridge"][0])
    assert hook_points(model) is hook_points(model)  # resolved once per model
