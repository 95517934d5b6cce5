"""Path patching: the fast path (EdgePatcher mask copies) and the exact one (hooked passes) equal
a hand-written TransformerLens-style path patch on tiny models, in both directions, into the
logits and into single and several receivers' q/k/v (grouped-query k/v included)."""

from __future__ import annotations

import pytest
import torch

from analysis import hooks
from analysis.metrics import last_logits, metric_per_prompt
from analysis.path_patching.paths import PatchPath, PathPatcher
from tests.analysis.circuits.conftest import hf_model, native_model, random_batch

torch.set_num_threads(1)


def tl_path_patch(model, batch, sender, receivers, direction="noising", metric="logit_diff"):
    """ARENA-style path patching with plain ``run_with_hooks``: (1) cache the base and source
    runs; (2) base run with the sender's z from the source and every other head's z and every
    MLP's output frozen to the base, recording the receivers' q/k/v (or keeping the logits);
    (3) base run with only those receiver activations patched in. Returns the mean metric."""
    base_tokens, source_tokens = (
        (batch.clean, batch.corrupted) if direction == "noising" else (batch.corrupted, batch.clean)
    )
    n_layers = model.cfg.n_layers
    with torch.no_grad():
        clean_logits = model(batch.clean)
        _, base = model.run_with_cache(base_tokens)
        _, source = model.run_with_cache(source_tokens)
    s_layer, s_head = (int(p[1:]) for p in sender.split("."))

    def freeze_z(layer):
        def hook(z, hook):
            out = base[hooks.z(layer).name].clone()
            if layer == s_layer:
                out[:, :, s_head] = source[hooks.z(layer).name][:, :, s_head]
            return out

        return hook

    freeze = [(hooks.z(layer).name, freeze_z(layer)) for layer in range(n_layers)]
    if not model.cfg.attn_only:
        freeze += [
            (hooks.site("mlp_out", layer).name, lambda x, hook, n=hooks.site("mlp_out", layer).name:
             base[n])
            for layer in range(n_layers)
        ]  # fmt: skip
    recorded = {}

    def record(x, hook):
        recorded[hook.name] = x.clone()

    sites = {hooks.site(kind, layer).name for layer, _, kind in receivers if kind != "logits"}
    with torch.no_grad():
        logits = model.run_with_hooks(
            base_tokens, fwd_hooks=freeze + [(name, record) for name in sites]
        )
        if receivers != [(None, None, "logits")]:

            def patch(layer, index, kind):
                name = hooks.site(kind, layer).name

                def hook(x, hook):
                    x = x.clone()
                    x[:, :, index] = recorded[name][:, :, index]
                    return x

                return (name, hook)

            logits = model.run_with_hooks(base_tokens, fwd_hooks=[patch(*r) for r in receivers])
    clean_last = last_logits(clean_logits, batch.last)
    values = metric_per_prompt(metric, last_logits(logits, batch.last), batch, clean_last)
    return float(values.mean())


CASES = [
    ("a0.h1", ("logits",), [(None, None, "logits")]),
    ("a1.h2", ("logits",), [(None, None, "logits")]),
    ("a0.h3", ("a1.h0<q>",), [(1, 0, "q")]),
    ("a0.h0", ("a1.h1<k>", "a1.h2<v>"), [(1, 1, "k"), (1, 2, "v")]),
    ("a0.h2", ("a1.h0<q>", "a1.h0<k>", "a1.h3<v>"), [(1, 0, "q"), (1, 0, "k"), (1, 3, "v")]),
]


@pytest.mark.parametrize("attn_only", [False, True], ids=["mlp", "attn-only"])
@pytest.mark.parametrize("direction", ["noising", "denoising"])
def test_fast_and_exact_equal_transformerlens_style_path_patching(attn_only, direction):
    model = native_model(attn_only=attn_only, seed=3 if attn_only else 0)
    batch = random_batch()
    pp = PathPatcher.build(model, batch, "logit_diff", direction)
    paths = [PatchPath(s, chs) for s, chs, _ in CASES]
    fast, exact = pp.fast(paths), pp.exact(paths)
    reference = torch.tensor([tl_path_patch(model, batch, s, r, direction) for s, _, r in CASES])
    assert torch.allclose(fast, reference, atol=1e-4), (fast, reference)
    assert torch.allclose(exact, reference, atol=1e-4), (exact, reference)
    # a path changes the metric (the test can fail), and it is not the corrupted run itself
    assert (reference - pp.base_metric).abs().max() > 1e-3
    # 2 baselines; fast: 2 recording forwards, the logits paths none, the 3 head paths one
    # replay from layer 1; exact: 2 caches + 1 pass per logits path, 2 per head path
    assert pp.counter.forwards == 2 + (2 + 1) + (2 + 2 * 1 + 3 * 2)
    # the edge-mask fast path (models that cannot be replayed) agrees too
    assert torch.allclose(pp.fast_edges(paths), reference, atol=1e-4)


def test_grouped_query_kv_receivers_match_the_reference():
    model = hf_model("llama")  # 4 query heads, 2 KV heads, rotary
    batch = random_batch(n=3, pos=7)
    pp = PathPatcher.build(model, batch, "logit_diff", "noising")
    paths = [PatchPath("a0.h1", ("a1.kv1<k>",)), PatchPath("a0.h3", ("a1.h2<q>", "a1.kv0<v>"))]
    reference = torch.tensor([
        tl_path_patch(model, batch, "a0.h1", [(1, 1, "k")]),
        tl_path_patch(model, batch, "a0.h3", [(1, 2, "q"), (1, 0, "v")]),
    ])  # fmt: skip
    assert torch.allclose(pp.fast(paths), reference, atol=1e-4)
    assert torch.allclose(pp.exact(paths), reference, atol=1e-4)


def test_fast_falls_back_to_edge_masks_where_the_replay_is_unavailable(monkeypatch):
    model = native_model(attn_only=True, seed=3)
    batch = random_batch(n=3, pos=6)
    pp = PathPatcher.build(model, batch, "logit_diff", "noising")
    paths = [PatchPath(s, chs) for s, chs, _ in CASES]
    monkeypatch.setattr(PathPatcher, "replay", lambda self: None)
    assert torch.equal(pp.fast(paths), pp.fast_edges(paths)) and not pp.replayed
    monkeypatch.undo()
    assert torch.allclose(pp.fast(paths), pp.fast_edges(paths), atol=1e-4) and pp.replayed
