"""Attention lenses on heads whose answer is known.

- a tiny model with a head BUILT to copy (W_V W_O = identity, W_U = W_Eᵀ): its OV lens promotes
  every source token itself; a random head does not;
- the zoo's induction-2l: its layer-1 induction heads copy the attended letter (OV lens top
  promoted token = the source for the letters), its layer-0 heads do not;
- the OV lens equals TransformerLens' full OV circuit ``W_E @ model.OV @ W_U`` over the two
  measured scales (LayerNorm MHA and RMSNorm GQA), chunked or not;
- the head logit lens at a prompt's last position is the head's DLA (``analysis.dla``), and at
  every position TransformerLens' ``stack_head_results`` + ``apply_ln_to_stack`` + ``W_U``;
- the trained lens: its decoder is the model's ``unembed(ln_final(·))``, it is deterministic by
  seed, reaches a lower KL than both zero-training lenses on the data it was trained on, and
  its safetensors file round-trips;
- the job: its scores as rows, a text file as lens data, bad files and configs named in one line.
"""

from __future__ import annotations

import pytest
import torch

from analysis.configs import ConfigError, parse_run_config
from analysis.dla import direct_logit_attribution
from analysis.job_table import job_for
from analysis.jobs import JobContext, JobError
from analysis.lens import decode
from analysis.lens.activations import LensActivations, collect, norm_scale
from analysis.lens.job import heldout_split
from analysis.lens.logit_lens import logit_lens, logit_lens_logits
from analysis.lens.ov import ov_lens, ov_lens_kl, ov_logits, prompt_sources, special_ids
from analysis.lens.trained import identity_lens, lens_scan, load_lens, save_lens, train_lens
from analysis.models import load_model
from analysis.prompt_batch import build_pair_batch
from analysis.prompts.generators import generate_pairs
from analysis.sae.activations import PromptTokens
from tests.analysis import heads_fixtures as F

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def one_thread():
    """Many tiny ops (a 2-layer model, small chunks): one thread avoids the cost of waking a
    second on a busy machine (20× here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def induction():
    return load_model("zoo:induction-2l")


@pytest.fixture(scope="module")
def induction_pairs(induction):
    return generate_pairs(induction, "induction", 12, 0)


@pytest.fixture(scope="module")
def induction_act(induction, induction_pairs) -> LensActivations:
    prompts = PromptTokens(induction, induction_pairs, corrupted=False)
    return collect(induction, prompts.tokens, prompts.mask)


def act_of(model, texts: list[str]) -> LensActivations:
    rows = [model.to_tokens(t)[0] for t in texts]
    width = max(len(r) for r in rows)
    tokens = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, r in enumerate(rows):
        tokens[i, : len(r)], mask[i, : len(r)] = r, True
    return collect(model, tokens, mask)


# --- a head built to copy --------------------------------------------------------------------


def copying_model():
    """One layer, two heads of d_head = d_model = 32 over the 31-token character vocabulary.
    The token embeddings are orthonormal and orthogonal to the all-ones vector (so LayerNorm's
    centring keeps them), W_U = W_Eᵀ, and head 0 has W_V = W_O = I: its OV circuit copies.
    Head 1 keeps its random weights."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    d = 32
    cfg = TransformerBridgeConfig(
        d_model=d, d_head=d, n_heads=2, n_layers=1, n_ctx=16, d_vocab=F.VOCAB, attn_only=True,
        normalization_type="LN", seed=0,
    )  # fmt: skip
    model = TransformerBridge.boot_native(cfg, tokenizer=F.char_tokenizer())
    g = torch.Generator().manual_seed(0)
    basis = torch.cat([torch.ones(d, 1), torch.randn(d, d - 1, generator=g)], 1)
    q, _ = torch.linalg.qr(basis)
    embed = q[:, 1 : F.VOCAB + 1].T.contiguous()  # [vocab, d]: orthonormal, ⟂ ones
    native = model.original_model
    attn = native.layers[0]._original_component.attn._original_component
    with torch.no_grad():
        native.tok_embed._original_component.weight.copy_(embed)
        native.head._original_component.weight.copy_(embed)  # logits = x @ W_Eᵀ
        native.head._original_component.bias.zero_()
        v, o = attn.v._original_component, attn.o._original_component
        v.weight[:d] = torch.eye(d)
        v.bias.zero_()
        o.weight[:, :d] = torch.eye(d)
        o.bias.zero_()
    model.enable_compatibility_mode()
    return model


def test_a_head_built_to_copy_promotes_the_attended_token():
    model = copying_model()
    act = act_of(model, ["abcab", "hello, world"])
    ov = ov_lens(model, act, 3, full_vocab_limit=1000)
    assert ov.source_set == "vocabulary" and ov.n_sources == F.VOCAB - len(special_ids(model))
    assert float(ov.copy_score[0, 0]) == 1.0 and float(ov.prompt_copy_score[0, 0]) == 1.0
    assert float(ov.copy_score[0, 1]) < 0.3  # the random head
    sources = ov.prompt_sources
    assert ov.per_source.top_ids[0, 0, :, 0].tolist() == sources.tolist()


# --- induction-2l ---------------------------------------------------------------------------


def test_induction_heads_copy_the_attended_letter(induction, induction_act):
    ov = ov_lens(induction, induction_act, 5, full_vocab_limit=1000)
    letters = torch.tensor([int(induction.to_tokens(c, prepend_bos=False)[0, 0]) for c in LETTERS])
    for head in range(4):
        logits = ov_logits(induction, 1, letters, 1.0, 1.0)[head]
        assert (logits.argmax(-1) == letters).float().mean() >= 0.9  # a1.hX copy (MECHANISM.md)
        assert float(ov.prompt_copy_score[1, head]) >= 0.9
    assert float(ov.copy_score[0].max()) < 0.3  # layer 0 (previous-token head a0.h2 included)
    # the average over sources promotes letters, the training alphabet
    top = ov.mean.top_ids[1, :, 0].tolist()
    assert all(induction.to_str_tokens(torch.tensor([t]))[0] in LETTERS for t in top)


# --- parity with TransformerLens ------------------------------------------------------------


@pytest.mark.parametrize("arch", ["induction", "llama"])
def test_ov_lens_is_transformer_lens_full_ov_circuit(arch, induction, tmp_path, monkeypatch):
    model = induction if arch == "induction" else F.llama_style(tmp_path)  # LN MHA / RMS GQA
    sources = torch.arange(3, int(model.cfg.d_vocab))
    ours = torch.stack([ov_logits(model, layer, sources, 2.0, 3.0)
                        for layer in range(int(model.cfg.n_layers))])  # fmt: skip
    full = (model.W_E[sources] @ model.OV @ model.W_U).AB.detach()  # [layer, head, s, vocab]
    assert torch.allclose(ours * 6.0, full, atol=1e-4 * float(full.abs().max()))
    # the chunked scan (a few sources per chunk) equals one pass
    act = act_of(model, ["abcab", "the cat sat"])
    whole = ov_lens(model, act, 4, full_vocab_limit=0)
    monkeypatch.setattr(decode, "MAX_LOGITS", 3 * int(model.cfg.d_vocab) * 4)
    chunked = ov_lens(model, act, 4, full_vocab_limit=0)
    assert whole.source_set == "prompt tokens" and len(whole.prompt_sources) > 3
    for field in ("top_ids", "bottom_ids"):
        assert torch.equal(getattr(whole.per_source, field), getattr(chunked.per_source, field))
    assert torch.allclose(whole.mean.top_logits, chunked.mean.top_logits, atol=1e-5)
    # its per-source rows are TransformerLens' rows of the prompt tokens
    rows = prompt_sources(model, act)
    tl = (model.W_E[rows] @ model.OV @ model.W_U).AB.detach()
    assert torch.equal(whole.per_source.top_ids[..., 0].long(), tl.argmax(-1))


def test_measured_scales_are_the_models_norm_scales(induction, induction_pairs):
    prompts = PromptTokens(induction, induction_pairs[:3], corrupted=False)
    act = collect(induction, prompts.tokens, prompts.mask)
    _, cache = induction.run_with_cache(prompts.tokens)
    real = prompts.mask
    for layer in range(2):
        tl = cache[f"blocks.{layer}.ln1.hook_scale"][..., 0][real].mean()
        assert float(act.ln1_scale[layer]) == pytest.approx(float(tl), rel=1e-5)
    assert torch.allclose(act.final_scale, cache["ln_final.hook_scale"][..., 0][real])


def test_head_logit_lens_is_the_heads_dla(induction, induction_pairs, induction_act):
    batch = build_pair_batch(induction, induction_pairs)
    dla = direct_logit_attribution(induction, batch).heads  # [layer, head, batch]
    last = [induction_act.rows_of(i).stop - 1 for i in range(batch.n_pairs)]
    for layer in range(2):
        logits = logit_lens_logits(induction, induction_act, layer, slice(0, induction_act.n))
        at_last = logits[:, last]  # [head, batch, vocab]
        rows = torch.arange(batch.n_pairs)
        diff = at_last[:, rows, batch.correct] - at_last[:, rows, batch.incorrect]
        assert torch.allclose(diff, dla[layer], atol=1e-4)


def test_head_logit_lens_is_transformer_lens_stack_and_apply_ln(induction, induction_act):
    tokens = torch.tensor([induction_act.tokens[0]])
    _, cache = induction.run_with_cache(tokens)
    stack = cache.stack_head_results(layer=-1)  # [layer*head, batch, pos, d_model]
    tl = cache.apply_ln_to_stack(stack, layer=None) @ induction.W_U  # ln_final per position
    rows = induction_act.rows_of(0)
    ours = torch.cat([logit_lens_logits(induction, induction_act, layer, rows) for layer in (0, 1)])
    assert torch.allclose(ours, tl[:, 0].detach(), atol=1e-4)


def test_logit_lens_scan_chunked_equals_one_pass(induction, induction_act, monkeypatch, one_thread):
    whole = logit_lens(induction, induction_act, 3)
    monkeypatch.setattr(decode, "MAX_LOGITS", 7 * 38 * 4)  # 7 rows per chunk
    chunked = logit_lens(induction, induction_act, 3)
    assert torch.allclose(whole.kl, chunked.kl, atol=1e-6)
    assert torch.equal(whole.ids, chunked.ids)
    # KL ≥ 0, probabilities of the top tokens descending
    assert float(whole.kl.min()) >= 0.0
    assert bool((whole.probs[..., :-1] >= whole.probs[..., 1:] - 1e-7).all())


# --- the trained lens -----------------------------------------------------------------------


def test_fresh_norm_decoder_is_the_models_unembed_of_ln_final(induction):
    x = torch.randn(2, 5, int(induction.cfg.d_model), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model_logits = induction.unembed(induction.ln_final(x))
    assert torch.allclose(decode.fresh_norm_logits(induction, x), model_logits, atol=1e-4)
    assert norm_scale(induction, x).shape == (2, 5, 1)


def test_trained_lens_beats_the_zero_training_lenses_and_round_trips(
    induction, induction_act, tmp_path, one_thread
):
    act = induction_act
    lens = train_lens(induction, act, steps=60, batch=64, lr=3e-3, seed=0)
    again = train_lens(induction, act, steps=60, batch=64, lr=3e-3, seed=0)
    assert torch.equal(lens.weight, again.weight) and torch.equal(lens.bias, again.bias)
    trained = lens_scan(induction, act, lens.weight, lens.bias, 3).kl
    untrained = lens_scan(induction, act, *identity_lens(induction), None).kl
    logit_kl = logit_lens(induction, act, None).kl
    ov_kl = ov_lens_kl(induction, act)
    assert bool((trained < untrained).all()) and bool((trained < logit_kl).all())
    assert bool((trained < ov_kl).all())
    path = tmp_path / "lens.safetensors"
    save_lens(path, lens, {"steps": "60"})
    weight, bias = load_lens(path)
    assert torch.equal(weight, lens.weight) and torch.equal(bias, lens.bias)
    assert torch.equal(lens_scan(induction, act, weight, bias, None).kl, trained)


# --- the job ----------------------------------------------------------------------------------


def run_lens(store, tmp_path, model, **fields):
    cfg = parse_run_config({"kind": "lens", "model": "zoo:induction-2l", "prompt_set": "ind",
                            **fields})  # fmt: skip
    ctx = JobContext(1, cfg, store, tmp_path, lambda c: model, lambda f, m: False)
    return job_for("lens")(ctx)


def test_lens_job_stores_the_scores_and_trains_on_a_text_file(
    store, tmp_path, induction, one_thread
):
    pairs = generate_pairs(induction, "induction", 4, 0)
    store.add_prompt_set("ind", pairs, "test", "zoo:induction-2l")
    out = run_lens(store, tmp_path, induction, max_prompts=4)
    copy = {(r.layer, r.head): r.value for r in out.head_results if r.metric == "ov_copy_score"}
    assert min(copy[1, h] for h in range(4)) > 0.5 > max(copy[0, h] for h in range(4))
    assert {a.name for a in out.artifacts} == {"lens.safetensors", "tokens.json"}
    assert not any(r.metric == "lens_kl" for r in out.head_results)
    text = tmp_path / "letters.txt"
    rng = torch.Generator().manual_seed(0)
    text.write_text("".join(LETTERS[i] for i in torch.randint(0, 10, (2000,), generator=rng)))
    out = run_lens(store, tmp_path, induction, max_prompts=4, train=True, train_text=str(text),
                   text_windows=4, train_steps=5)  # fmt: skip
    assert out.summary["lens_data"] == "4 windows of 64 tokens of the text file"
    assert out.summary["lens_positions"] == 4 * 64
    assert len([r for r in out.head_results if r.metric == "lens_kl"]) == 8
    # the last of the 4 windows is held out of training and scored apart
    assert len([r for r in out.head_results if r.metric == "lens_kl_heldout"]) == 8
    held = out.summary["training"]["heldout"]
    assert (held["sequences"], held["positions"]) == (1, 64)
    assert out.summary["training"]["positions"] == 3 * 64
    assert "lens_weights.safetensors" in {a.name for a in out.artifacts}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"train_text": "/no/such.txt"}, "train_text: no file /no/such.txt; pass an existing"),
        ({"train_text": "TEXT", "text_window": 100}, "text_window: 100 exceeds the model's"),
    ],
)
def test_bad_text_files_are_one_line_job_errors(store, tmp_path, induction, fields, message):
    store.add_prompt_set("ind", generate_pairs(induction, "induction", 2, 0), "test", None)
    (tmp_path / "t.txt").write_text("abc " * 200)
    fields = {k: str(tmp_path / "t.txt") if v == "TEXT" else v for k, v in fields.items()}
    with pytest.raises(JobError, match=message) as caught:
        run_lens(store, tmp_path, induction, train=True, **fields)
    assert "\n" not in str(caught.value)


def test_heldout_split_keeps_the_last_sequences_out():
    assert heldout_split(16, 0.25) == (list(range(12)), [12, 13, 14, 15])
    assert heldout_split(2, 0.1) == ([0], [1])  # at least one ...
    assert heldout_split(3, 0.9) == ([0], [1, 2])  # ... never all
    assert heldout_split(1, 0.25) == ([0], []) and heldout_split(8, 0.0) == (list(range(8)), [])


def test_config_names_what_is_wrong():
    with pytest.raises(ConfigError, match="train_text: a text file trains a lens only with"):
        parse_run_config({"kind": "lens", "model": "zoo:induction-2l", "prompt_set": "p",
                          "train_text": "a.txt"})  # fmt: skip
    with pytest.raises(ConfigError, match="prompt_set: the lens run needs a prompt set"):
        parse_run_config({"kind": "lens", "model": "zoo:induction-2l"})


def test_induction_heads_logit_lens_names_the_token_after_the_earlier_copy(
    induction, induction_act
):
    lens = logit_lens(induction, induction_act, 1)
    hits, n = torch.zeros(2, 4), 0
    for i, toks in enumerate(induction_act.tokens):
        start = induction_act.rows_of(i).start
        for q in range(1, len(toks)):
            earlier = [k for k in range(q) if toks[k] == toks[q]]
            if earlier:
                n += 1
                hits += (lens.ids[start + q, :, :, 0] == toks[earlier[-1] + 1]).float()
    assert n > 30
    assert float((hits[1] / n).min()) > 0.7 > 0.2 > float((hits[0] / n).max())
