"""The head taxonomy's scores on heads whose answer is known.

- patterns built to be a self-attender, a windowed head, a sink and copies of one another;
- a tiny model with a head BUILT to be a dormant sink (its key reads a position-0 marker, its
  query is constant, its value is zero);
- the zoo's induction-2l, whose layer-1 induction heads copy (retrieval heads) and whose a0.h2
  attends to the previous token (a windowed head);
- streaming's exactness against the model's own masked softmax (the native attention's causal
  mask replaced by the streaming mask) and against an edit of z, on three architectures.
"""

from __future__ import annotations

import pytest
import torch

from analysis.models import load_model
from analysis.prompt_batch import build_pair_batch
from analysis.prompts.generators import GeneratorError, generate_pairs
from analysis.prompts.needle import NeedleOptions
from analysis.prompts.validate import TokenizerView
from analysis.taxonomy import patterns as P
from analysis.taxonomy.batch import TaxonomyBatch, taxonomy_batch
from analysis.taxonomy.kv import kv_bytes_per_token, kv_curve, kv_shape
from analysis.taxonomy.probe import probe_all
from analysis.taxonomy.streaming import (
    Reference,
    forward_streamed,
    head_deviation,
    outcome,
    streamed_z_reference,
    streaming_mask,
)
from storage.records import PairRecord
from tests.analysis import heads_fixtures as F
from tests.analysis.arch_fixtures import arch_model  # noqa: F401

# --- patterns --------------------------------------------------------------------------------


def banded(n: int, width: int) -> torch.Tensor:
    q, k = torch.arange(n)[:, None], torch.arange(n)[None, :]
    band = ((k <= q) & (k > q - width)).float()
    return band / band.sum(-1, keepdim=True)


def test_span_of_windowed_self_and_first_token_heads():
    n = 12
    q = torch.arange(n)
    assert P.attention_span(banded(n, 4), 0.9).tolist() == torch.clamp(q + 1, max=4).tolist()
    assert P.attention_span(torch.eye(n), 0.9).tolist() == [1] * n
    first = torch.zeros(n, n)
    first[:, 0] = 1.0
    assert P.attention_span(first, 0.9).tolist() == (q + 1).tolist()
    # 90 % of a 4-wide band needs all 4 keys, 75 % needs 3
    assert int(P.attention_span(banded(n, 4), 0.75)[-1]) == 3


def test_sinks_include_a_delimiter_that_draws_attention():
    n = 10
    p = torch.zeros(1, 2, n, n)
    p[..., :, 0] = 1.0  # everyone on the first token ...
    p[..., 5:, 0], p[..., 5:, 4] = 0.5, 0.5  # ... and, after it, half on position 4
    assert P.sink_positions(p, 0.3) == [0, 4]
    assert torch.allclose(P.sink_mass(p, [0, 4]), torch.ones(1, 2))
    assert torch.allclose(P.sink_mass(p, [0]), torch.full((1, 2), (4 + 0.5 * 5) / 9))


def test_js_distance_and_clusters():
    n = 8
    a, b = banded(n, 2), torch.eye(n)
    other = torch.zeros(n, n)
    other[:, 0] = 1.0
    heads = torch.stack([a, a.clone(), b, other, other.clone()])
    d = P.js_distance_matrix(heads)
    assert torch.allclose(d.diagonal(), torch.zeros(5), atol=1e-6)
    assert float(d[0, 1]) < 1e-6 and float(d[3, 4]) < 1e-6
    assert torch.allclose(d, d.T)
    # rows 1.. (row 0 is skipped) of eye and first-token are disjoint distributions: distance 1
    assert abs(float(d[2, 3]) - 1.0) < 1e-6
    assert P.js_rows(100, 4) == [1, 34, 66, 99] and P.js_rows(5) == [1, 2, 3, 4]
    clusters = P.cluster_heads(d, 3)
    assert clusters.labels[0] == clusters.labels[1] and clusters.labels[3] == clusters.labels[4]
    assert len(set(clusters.labels)) == 3 and len(clusters.representatives) == 3
    for rep in clusters.representatives:
        assert rep in range(5)


# --- a head built to be a dormant sink -------------------------------------------------------


def dormant_sink_model():
    """native_attn_only with layer 0 head 0 built to put all its attention on position 0 (its
    key reads a marker that only position 0's positional embedding carries; its query is a
    constant bias) and to write nothing (zero value)."""
    model = F.native_attn_only()
    native, d_head = model.original_model, 8
    with torch.no_grad():
        pos = native.pos._original_component.weight
        pos[0] = 0.0
        pos[0, 0] = 20.0
        attn = native.layers[0]._original_component.attn._original_component
        q, k, v = (getattr(attn, x)._original_component for x in "qkv")
        rows = slice(0, d_head)
        for lin in (q, k, v):
            lin.weight[rows] = 0.0
            lin.bias[rows] = 0.0
        k.weight[0, 0] = 1.0
        q.bias[0] = 30.0
    return model


def token_batch(tokens: torch.Tensor) -> TaxonomyBatch:
    n, width = tokens.shape
    none = torch.zeros(n, 0, dtype=torch.long)
    return TaxonomyBatch(
        tokens, torch.full((n,), width), torch.full((n,), width - 1), tokens[:, 1], tokens[:, 2],
        none, none, none, none.bool(), [None] * n, [None] * n,
    )  # fmt: skip


def test_built_sink_head_is_a_dormant_streaming_head():
    model = dormant_sink_model()
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(2, F.VOCAB, (6, 20), generator=g)
    tokens[:, 0] = 0  # <bos>
    batch = token_batch(tokens)
    totals = probe_all(model, batch, 0.9, 0.3)
    sink = torch.stack([p.sink_mass for p in totals.prompts]).mean(0)
    out = torch.stack([p.output_norm for p in totals.prompts]).mean(0)
    assert float(sink[0, 0]) > 0.99
    assert float(sink.flatten()[1:].max()) < 0.6  # the random heads are no sinks
    assert float(out[0, 0]) < 1e-6 < float(out.flatten()[1:].min())
    span = torch.stack([p.span for p in totals.prompts]).mean(0)
    assert float(span[0, 0]) == pytest.approx(torch.arange(2, 21).float().mean().item(), abs=0.01)
    dev = head_deviation(model, batch, sink=1, window=4)
    assert float(dev.kl[0, 0]) < 1e-9  # the sink keeps all it attends to
    assert float(dev.kl.flatten()[1:].min()) > 1e-4


# --- streaming is exact -------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["zoo:induction-2l", "zoo:code-6l"])
def test_streaming_equals_the_models_own_masked_softmax(spec):
    model = load_model(spec)
    tokens = torch.randint(1, 27, (2, 40), generator=torch.Generator().manual_seed(1))
    for layer in (0, 1):
        attn = model.blocks[layer].attn.original_component
        everyone = torch.ones(2, int(model.cfg.n_heads), dtype=torch.bool)
        got = forward_streamed(model, tokens, {layer: everyone}, 1, 4)
        causal = attn.causal_mask.clone()
        try:
            attn.causal_mask.copy_(~streaming_mask(causal.shape[0], 1, 4))
            with torch.no_grad():
                want = model(tokens).float()
        finally:
            attn.causal_mask.copy_(causal)
        assert torch.allclose(got, want, atol=1e-4), float((got - want).abs().max())
        with torch.no_grad():
            plain = model(tokens).float()
        assert float((got - plain).abs().max()) > 0.1  # and it changes the output


def test_streaming_equals_a_z_edit_per_head_and_prompt(arch_model):  # noqa: F811
    tokens = torch.randint(2, F.VOCAB, (2, 20), generator=torch.Generator().manual_seed(2))
    chosen = torch.zeros(2, int(arch_model.cfg.n_heads), dtype=torch.bool)
    chosen[0, 1], chosen[1, 3] = True, True
    for layer in (0, 1):
        got = forward_streamed(arch_model, tokens, {layer: chosen}, 1, 3)
        want = streamed_z_reference(arch_model, tokens, layer, chosen, 1, 3)
        assert torch.allclose(got, want, atol=1e-4)
    wide = forward_streamed(arch_model, tokens, {0: chosen}, 1, 20)
    assert torch.allclose(wide, arch_model(tokens).float(), atol=1e-5)  # window covers all


# --- needles and retrieval on the zoo ----------------------------------------------------------


@pytest.fixture(scope="module")
def induction():
    return load_model("zoo:induction-2l")


def needle_batch(model, n: int, **options) -> TaxonomyBatch:
    pairs = generate_pairs(model, "needle", n, 0, NeedleOptions(**options))
    records = [PairRecord(**vars(p), index=i) for i, p in enumerate(pairs)]
    return taxonomy_batch(model, records, build_pair_batch(model, pairs))


def test_needle_pairs_put_the_needle_where_the_options_say(induction):
    pairs = generate_pairs(induction, "needle", 10, 3, NeedleOptions(contexts=(20, 40)))
    view = TokenizerView.of(induction)
    for p in pairs:
        m = p.meta
        ids = view.token_ids([p.clean])[0]
        assert len(ids) == 1 + m["context"]  # BOS + context
        text = "".join(m["needle"])
        at = p.clean.index(text)
        filler = m["context"] - len(m["needle"]) - m["query"]
        assert at == round(m["depth"] * filler)
        assert p.clean.endswith("".join(m["needle"][: m["query"]]))
        assert p.correct == m["needle"][m["query"]]
        assert p.clean.count(m["needle"][0]) == 2  # once in the needle, once in the query
    with pytest.raises(GeneratorError, match="contexts"):
        generate_pairs(induction, "needle", 2, 0, NeedleOptions(contexts=(500,)))
    with pytest.raises(GeneratorError, match="needle task only"):
        generate_pairs(induction, "induction", 2, 0, NeedleOptions(needle_length=4))


def test_induction_heads_are_the_retrieval_heads(induction):
    batch = needle_batch(induction, 12)
    totals = probe_all(induction, batch, 0.9, 0.3)
    retrieval = torch.stack([p.retrieval for p in totals.prompts]).mean(0)
    assert float(retrieval[1].min()) > 0.5  # a1.h0-h3 copy the needle (MECHANISM.md)
    assert float(retrieval[0].max()) < 0.1
    span = torch.stack([p.span for p in totals.prompts]).mean(0)
    assert float(span[0, 2]) == float(span.min()) and float(span[0, 2]) < 3.5  # previous-token


def test_kv_curve_starts_at_the_full_model_and_counts_kv_heads(induction):
    batch = needle_batch(induction, 8)
    dev = head_deviation(induction, batch, 1, 8)
    curve = kv_curve(induction, batch, {"duo": dev.kl}, points=3, seeds=2, sink=1, window=8)
    with torch.no_grad():
        logits = induction(batch.tokens).float()
    rows = torch.arange(batch.n_prompts)
    diff = logits[rows, batch.last, batch.correct] - logits[rows, batch.last, batch.incorrect]
    for name in ("duo", "random"):
        assert curve["curves"][name]["logit_diff"]["mean"][0] == pytest.approx(float(diff.mean()))
    assert curve["curves"]["random"]["logit_diff"]["std"][0] == 0.0
    assert curve["streamed_kv_heads"] == [0, 4, 8] and curve["kv_saved"][0] == 0.0
    full = kv_bytes_per_token(induction, 0, 64, 1, 8, 4)
    assert full == 2 * 4 * 2 * 16 * 4  # K and V x 2 layers x 4 heads x d_head 16 x fp32
    assert curve["kv_bytes_per_token"][-1] == pytest.approx(full * 9 / 64)
    # streaming the least deviating half costs less logit diff than a random half, here
    duo, rnd = (curve["curves"][k]["logit_diff"]["mean"][1] for k in ("duo", "random"))
    assert duo > rnd


def test_gqa_streams_whole_kv_heads(arch_model):  # noqa: F811
    n_kv, group = kv_shape(arch_model)
    assert n_kv * group == int(arch_model.cfg.n_heads)
    if group > 1:  # the llama fixture: 4 query heads on 2 KV heads
        full = kv_bytes_per_token(arch_model, 0, 32, 1, 4, 4)
        assert full == 2 * int(arch_model.cfg.d_head) * 4 * 2 * n_kv


def test_outcome_kl_and_loss_equal_their_definitions():
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 11, (3, 7), generator=g)
    batch = token_batch(tokens)
    full, streamed = torch.randn(3, 7, 11, generator=g), torch.randn(2 * 3, 7, 11, generator=g)
    out = outcome(streamed, batch, Reference.of(full), affected_from=2)
    ref = full.log_softmax(-1).repeat(2, 1, 1)
    kl = (ref.exp() * (ref - streamed.log_softmax(-1))).sum(-1)[:, 2:].sum(-1)
    assert torch.allclose(out.kl, kl, atol=1e-5)
    assert out.kl_count.tolist() == [5.0] * 6
    logp = streamed.log_softmax(-1)
    nll = -logp[:, :-1].gather(-1, tokens.repeat(2, 1)[:, 1:, None])[..., 0]
    assert torch.allclose(out.loss, nll.mean(-1), atol=1e-5)


def test_js_distance_equals_scipys():
    from scipy.spatial.distance import jensenshannon

    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(2, 6, 9, generator=g).softmax(-1)
    want = sum(jensenshannon(a[q].numpy(), b[q].numpy(), base=2) for q in range(6)) / 6
    assert float(P.js_distance(a[None], b[None])[0, 0]) == pytest.approx(want, abs=1e-5)
