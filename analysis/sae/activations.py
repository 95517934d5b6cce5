"""Token sources and the ``hook_z`` activation stream that attention-output SAEs train on.

An attention-output SAE (Kissane et al. 2024) reads ``blocks.L.attn.hook_z`` — the per-head
attention outputs before ``W_O``, shape ``[batch, pos, n_heads, d_head]`` — flattened head-major to
``d_in = n_heads * d_head`` (head ``h`` owns columns ``h*d_head : (h+1)*d_head``), which is the
layout of sae-lens' ``reshape_activations="hook_z"``.

Token sources (all offline):

- ``ZooTaskTokens``: a zoo model's own training task (its recipe's sampler), for ``zoo:`` models.
- ``RepeatedTokens``: BOS + a random token sequence repeated with a random period (5–20 by
  default) — the distribution the zoo induction model is trained on, and a reasonable probe of
  copying behaviour for any model.
- ``TextFileTokens``: a local text file tokenised with the model's tokenizer, cut into windows of
  ``context_size`` tokens that each start with BOS.
- ``PromptTokens``: the clean (and optionally corrupted) prompts of a stored prompt set,
  right-padded; padding positions are masked out of every statistic.

Every source yields ``TokenBatch`` (tokens + a mask of real positions). ``ActivationStream`` runs
the model up to the last requested layer (``stop_at_layer``), keeps the real positions, shuffles
them in a buffer and yields fixed-size training batches per layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from jaxtyping import Bool, Float, Int

from analysis import hooks

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


class TokenSourceError(ValueError):
    """A token source cannot produce tokens; the message says what to change."""


@dataclass(frozen=True)
class TokenBatch:
    tokens: Int[torch.Tensor, "batch pos"]
    mask: Bool[torch.Tensor, "batch pos"]  # True at real (non-padding) positions

    @property
    def n_tokens(self) -> int:
        return int(self.mask.sum())


class TokenSource(Protocol):
    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[TokenBatch]:
        """An endless iterator of token batches of ``batch_size`` sequences."""
        ...

    def describe(self) -> str: ...


def _special_ids(tokenizer: Any) -> set[int]:
    if tokenizer is None:
        return set()
    return {int(i) for i in getattr(tokenizer, "all_special_ids", []) or []}


def bos_id(model: TransformerBridge) -> int | None:
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None or tokenizer.bos_token_id is None:
        return None
    return int(tokenizer.bos_token_id)


@dataclass(frozen=True)
class RepeatedTokens:
    """BOS + ``seq_len - 1`` tokens: a random block of length ``period`` repeated to fill.

    The period is drawn per sequence from ``[min_period, max_period]``; tokens are drawn from
    ``vocab`` (the model's non-special token ids by default, see ``for_model``).
    """

    vocab: tuple[int, ...]
    seq_len: int
    bos: int | None = None
    min_period: int = 5
    max_period: int = 20

    @classmethod
    def for_model(cls, model: TransformerBridge, seq_len: int, **kwargs: Any) -> RepeatedTokens:
        if seq_len > model.cfg.n_ctx:
            raise TokenSourceError(
                f"context_size {seq_len} exceeds the model's context {model.cfg.n_ctx}; "
                f"pass --context-size {model.cfg.n_ctx} or less"
            )
        specials = _special_ids(getattr(model, "tokenizer", None))
        vocab = tuple(i for i in range(model.cfg.d_vocab) if i not in specials)
        return cls(vocab=vocab, seq_len=seq_len, bos=bos_id(model), **kwargs)

    def describe(self) -> str:
        return f"repeated random tokens (period {self.min_period}-{self.max_period})"

    def sample(self, n: int, generator: torch.Generator) -> Int[torch.Tensor, "batch pos"]:
        body_len = self.seq_len - (self.bos is not None)
        vocab = torch.tensor(self.vocab, dtype=torch.long)
        hi = min(self.max_period, body_len)
        periods = torch.randint(self.min_period, hi + 1, (n,), generator=generator)
        blocks = vocab[torch.randint(len(vocab), (n, hi), generator=generator)]
        positions = torch.arange(body_len)[None, :] % periods[:, None]
        body = torch.gather(blocks, 1, positions)
        if self.bos is None:
            return body
        return torch.cat([torch.full((n, 1), self.bos, dtype=torch.long), body], dim=1)

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[TokenBatch]:
        while True:
            tokens = self.sample(batch_size, generator)
            yield TokenBatch(tokens, torch.ones_like(tokens, dtype=torch.bool))


@dataclass(frozen=True)
class ZooTaskTokens:
    """Sequences from a zoo model's own training task (its recipe's sampler)."""

    name: str
    sample: Callable[[torch.Generator, int, dict[str, int]], Any]
    vocab: dict[str, int]

    @classmethod
    def for_spec(cls, spec: str, model: TransformerBridge) -> ZooTaskTokens:
        from analysis.zoo.task import Recipe
        from analysis.zoo.train import load_recipe

        if not spec.startswith("zoo:"):
            raise TokenSourceError(
                f"source=zoo needs a zoo model, not {spec}; use --source repeat or text"
            )
        try:
            recipe = load_recipe(spec.removeprefix("zoo:"))
        except ValueError as exc:
            raise TokenSourceError(str(exc)) from None
        if not isinstance(recipe, Recipe):
            raise TokenSourceError(
                f"{spec} learned from text, not a synthetic task; use --source text or repeat"
            )
        return cls(recipe.name, recipe.sample, dict(model.tokenizer.get_vocab()))

    def describe(self) -> str:
        return f"zoo task {self.name}"

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[TokenBatch]:
        while True:
            tokens = self.sample(generator, batch_size, self.vocab).tokens
            yield TokenBatch(tokens, torch.ones_like(tokens, dtype=torch.bool))


@dataclass(frozen=True)
class FixedTokens:
    """A fixed set of (padded) sequences, served in a fresh random order every epoch."""

    tokens: Int[torch.Tensor, "n pos"]
    mask: Bool[torch.Tensor, "n pos"]
    label: str

    def describe(self) -> str:
        return f"{self.label} ({self.tokens.shape[0]} sequences)"

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[TokenBatch]:
        n = self.tokens.shape[0]
        while True:
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                yield TokenBatch(self.tokens[idx], self.mask[idx])


def TextFileTokens(model: TransformerBridge, path: str | Path, context_size: int) -> FixedTokens:  # noqa: N802
    """Tokenise a local text file and cut it into BOS-prefixed windows of ``context_size``."""
    path = Path(path)
    if not path.is_file():
        raise TokenSourceError(f"text file {path} does not exist; pass an existing --text-path")
    text = path.read_text(encoding="utf-8", errors="replace")
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise TokenSourceError("the model has no tokenizer, so a text file cannot be used")
    if context_size > model.cfg.n_ctx:
        raise TokenSourceError(
            f"context_size {context_size} exceeds the model's context {model.cfg.n_ctx}"
        )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = bos_id(model)
    width = context_size - (bos is not None)
    if len(ids) < width:
        raise TokenSourceError(
            f"text file {path} has {len(ids)} tokens, fewer than one window of {width}; "
            "use a longer file or a smaller --context-size"
        )
    n = len(ids) // width
    body = torch.tensor(ids[: n * width], dtype=torch.long).view(n, width)
    if bos is not None:
        body = torch.cat([torch.full((n, 1), bos, dtype=torch.long), body], dim=1)
    return FixedTokens(body, torch.ones_like(body, dtype=torch.bool), f"text file {path.name}")


def PromptTokens(
    model: TransformerBridge, pairs: Sequence[Any], corrupted: bool = True
) -> FixedTokens:  # noqa: N802
    """The clean prompts of a prompt set (and the corrupted ones when ``corrupted``), tokenised
    and right-padded by the shared ``build_pair_batch``; padding is masked out."""
    from analysis.prompt_batch import PromptBatchError, build_pair_batch

    try:
        batch = build_pair_batch(model, pairs)
    except PromptBatchError as exc:
        raise TokenSourceError(str(exc)) from None
    tokens = torch.cat([batch.clean, batch.corrupted]) if corrupted else batch.clean
    lengths = torch.cat([batch.lengths, batch.lengths]) if corrupted else batch.lengths
    mask = torch.arange(tokens.shape[1], device=lengths.device)[None, :] < lengths[:, None]
    return FixedTokens(tokens.cpu(), mask.cpu(), f"prompt set ({len(pairs)} pairs)")


class _Captured(Exception):
    """Raised by the deepest capture hook: the rest of the forward pass is not needed."""


@torch.no_grad()
def hook_z(
    model: TransformerBridge, tokens: Int[torch.Tensor, "batch pos"], layers: Sequence[int]
) -> dict[int, Float[torch.Tensor, "batch pos n_heads d_head"]]:
    """``hook_z`` of each layer in ``layers``, running the model only as far as needed.

    The hook of the deepest layer aborts the forward pass once it has its activation (the
    attention output projection, later blocks and the unembedding are skipped); hooks are
    removed by ``run_with_hooks`` either way.
    """
    names = {hooks.z(layer).name: layer for layer in layers}
    last = hooks.z(max(layers)).name
    captured: dict[int, torch.Tensor] = {}

    def grab(z: torch.Tensor, hook: Any) -> torch.Tensor:
        captured[names[hook.name]] = z.detach()
        if hook.name == last:
            raise _Captured
        return z

    device = next(model.parameters()).device
    with contextlib.suppress(_Captured):
        model.run_with_hooks(
            tokens.to(device),
            fwd_hooks=[(name, grab) for name in names],
            stop_at_layer=max(layers) + 1,
        )
    return captured


def flatten_heads(
    z: Float[torch.Tensor, "... n_heads d_head"],
) -> Float[torch.Tensor, "... d_in"]:
    return z.reshape(*z.shape[:-2], z.shape[-2] * z.shape[-1])


class ActivationStream:
    """Shuffled training batches of flattened ``hook_z`` for several layers from one source.

    One model forward (up to the deepest layer) feeds all layers, so training SAEs for several
    layers costs one activation pass. ``next()`` returns ``{layer: [batch_tokens, d_in]}``.
    """

    def __init__(
        self,
        model: TransformerBridge,
        source: TokenSource,
        layers: Sequence[int],
        batch_tokens: int,
        *,
        seqs_per_forward: int = 32,
        buffer_batches: int = 8,
        seed: int = 0,
    ) -> None:
        self.model, self.layers, self.batch_tokens = model, list(layers), batch_tokens
        self.generator = torch.Generator().manual_seed(seed)
        self._batches = source.batches(seqs_per_forward, self.generator)
        self._min_fill = batch_tokens * buffer_batches
        self._buffer: dict[int, torch.Tensor] = {}
        self._cursor = 0
        self.tokens_seen = 0

    def _refill(self) -> None:
        parts: dict[int, list[torch.Tensor]] = {layer: [] for layer in self.layers}
        leftover = {k: v[self._cursor :] for k, v in self._buffer.items()}
        have = next(iter(leftover.values())).shape[0] if leftover else 0
        while have < self._min_fill:
            batch = next(self._batches)
            zs = hook_z(self.model, batch.tokens, self.layers)
            mask = batch.mask.to(next(iter(zs.values())).device)
            for layer, z in zs.items():
                parts[layer].append(flatten_heads(z)[mask])
            have += batch.n_tokens
        order = torch.randperm(have, generator=self.generator)
        for layer in self.layers:
            joined = torch.cat([leftover.get(layer, parts[layer][0][:0]), *parts[layer]])
            self._buffer[layer] = joined[order.to(joined.device)]
        self._cursor = 0

    def __iter__(self) -> ActivationStream:
        return self

    def __next__(self) -> dict[int, Float[torch.Tensor, "batch d_in"]]:
        if not self._buffer or self._cursor + self.batch_tokens > self._size():
            self._refill()
        start, self._cursor = self._cursor, self._cursor + self.batch_tokens
        self.tokens_seen += self.batch_tokens
        return {layer: buf[start : self._cursor] for layer, buf in self._buffer.items()}

    def _size(self) -> int:
        return next(iter(self._buffer.values())).shape[0]


def collect_tokens(source: TokenSource, n_tokens: int, seed: int, seqs: int = 32) -> TokenBatch:
    """At least ``n_tokens`` real tokens from ``source`` (or one full epoch of a fixed set)."""
    generator = torch.Generator().manual_seed(seed)
    if isinstance(source, FixedTokens) and source.mask.sum() <= n_tokens:
        return TokenBatch(source.tokens, source.mask)
    batches, have = [], 0
    for batch in source.batches(seqs, generator):
        batches.append(batch)
        have += batch.n_tokens
        if have >= n_tokens:
            break
    width = max(b.tokens.shape[1] for b in batches)
    tokens = torch.cat(
        [torch.nn.functional.pad(b.tokens, (0, width - b.tokens.shape[1])) for b in batches]
    )
    mask = torch.cat(
        [torch.nn.functional.pad(b.mask, (0, width - b.mask.shape[1])) for b in batches]
    )
    return TokenBatch(tokens, mask)
