"""Needle-in-a-haystack pairs for retrieval heads (Wu et al. 2024), for any tokenizer.

A prompt of ``context`` tokens (after BOS) is filler with a *needle* — ``needle_length``
distinct single-token units — placed at ``depth`` (0 = the start of the filler, 1 = its end),
followed by the needle's first ``query`` units. The model retrieves the needle by continuing
it: correct = ``needle[query]``; the taxonomy then teacher-forces the rest of the needle and
reads, token by token, which heads copy it from the haystack.

The corrupted prompt is the same filler with another needle (disjoint units) and that needle's
first units, so its answer (the incorrect one) is that needle's next unit. Filler units are
drawn from units in neither needle, so every needle token occurs once before the query and the
copy is unambiguous. Units: letters on a character tokenizer, single-token words otherwise.
Pairs cycle over the grid of contexts × depths.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from analysis.prompts.validate import TokenizerView
from storage.records import PairIn

DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
MIN_UNITS = 64  # word tokenizers: below this many listed words, vocabulary words are added
MAX_UNITS = 400


class NeedleOptionsError(ValueError):
    """The needle options do not fit this model; the message says which and why."""


@dataclass(frozen=True)
class NeedleOptions:
    needle_length: int = 6
    query: int = 2
    contexts: tuple[int, ...] = ()  # () = four lengths up to what the context allows
    depths: tuple[float, ...] = ()  # () = DEPTHS


def needle_options(values: dict) -> NeedleOptions:
    """``NeedleOptions`` from keyword values (lists become tuples); unknown keys are refused."""
    known = {"needle_length", "query", "contexts", "depths"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise NeedleOptionsError(
            f"unknown needle options {unknown}; use {', '.join(sorted(known))}"
        )
    fixed = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in values.items()}
    return NeedleOptions(**fixed)  # type: ignore[arg-type]


def _units(view: TokenizerView) -> list[str]:
    from analysis.prompts.generators import NAMES, OBJECTS, PLACES, WORDS, is_char_level

    if is_char_level(view):
        return list(string.ascii_lowercase)
    words = dict.fromkeys(WORDS + NAMES + OBJECTS + PLACES)
    units = [" " + w for w in words if len(view.answer_tokens(" " + w)) == 1]
    if len(units) < MIN_UNITS:  # e.g. a BPE trained on code: its own lowercase words
        units += [u for u in _vocabulary_words(view) if u not in units]
    return units[:MAX_UNITS]


def _vocabulary_words(view: TokenizerView) -> list[str]:
    """Vocabulary entries that decode to a space and 3-10 lowercase letters and encode back
    to that one token, in id order."""
    tok = view.tokenizer
    found = []
    for i in range(int(view.model.cfg.d_vocab)):
        text = tok.decode([i])
        if re.fullmatch(r" [a-z]{3,10}", text) and view.answer_tokens(text) == [i]:
            found.append(text)
            if len(found) >= MAX_UNITS:
                break
    return found


def plan(view: TokenizerView, opts: NeedleOptions) -> tuple[list[str], list[int], list[float]]:
    """The units, contexts and depths the set will use; NeedleOptionsError if they cannot fit."""
    units = _units(view)
    length, q = opts.needle_length, opts.query
    if not 1 <= q < length:
        raise NeedleOptionsError(
            f"query must be between 1 and needle_length - 1 = {length - 1} (got {q})"
        )
    if 2 * length + 2 > len(units):
        raise NeedleOptionsError(
            f"needle_length {length} needs {2 * length + 2} distinct single-token units; this "
            f"tokenizer has {len(units)}: use needle_length <= {(len(units) - 2) // 2}"
        )
    # BOS + context + the needle's rest (teacher-forced) must fit the model's context.
    longest = view.n_ctx - 1 - (length - q - 1)
    shortest = length + q + 2
    if longest < shortest:
        raise NeedleOptionsError(
            f"the model's context of {view.n_ctx} tokens is too short for a needle of {length}"
        )
    contexts = list(opts.contexts) or sorted(
        {round(shortest + (longest - shortest) * i / 3) for i in range(4)}
    )
    bad = [c for c in contexts if not shortest <= c <= longest]
    if bad:
        raise NeedleOptionsError(
            f"contexts {bad} do not fit: each must be between {shortest} (needle + query + 2) "
            f"and {longest} tokens (the model's context minus BOS and the needle's rest)"
        )
    depths = list(opts.depths) or list(DEPTHS)
    if any(not 0.0 <= d <= 1.0 for d in depths):
        raise NeedleOptionsError(f"depths must lie in [0, 1] (got {depths})")
    return units, contexts, depths


def _prompt(filler: Sequence[str], needle: Sequence[str], at: int, q: int) -> str:
    return "".join([*filler[:at], *needle, *filler[at:], *needle[:q]])


def needle(view: TokenizerView, n: int, rng: random.Random, opts: NeedleOptions) -> list[PairIn]:
    units, contexts, depths = plan(view, opts)
    length, q = opts.needle_length, opts.query
    grid = [(c, d) for c in contexts for d in depths]
    pairs = []
    for i in range(n):
        context, depth = grid[i % len(grid)]
        picked = rng.sample(units, 2 * length)
        first, second = picked[:length], picked[length:]
        rest = [u for u in units if u not in picked]
        filler = rng.choices(rest, k=context - length - q)
        at = round(depth * len(filler))
        pairs.append(
            PairIn(
                clean=_prompt(filler, first, at, q),
                corrupted=_prompt(filler, second, at, q),
                correct=first[q],
                incorrect=second[q],
                meta={
                    "task": "needle",
                    "needle": first,
                    "query": q,
                    "depth": depth,
                    "context": context,
                },  # fmt: skip
            )
        )
    return pairs
