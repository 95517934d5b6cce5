"""Tasks on real Python code, for models that read code (``zoo:code-6l``, GPT-2, ...).

Every pair is built from words that are single tokens of the model's tokenizer and is kept only
when the answer is the very next token (``tokens(prompt + answer) == tokens(prompt) + [answer]``),
so the metric reads the token the model would write. Clean and corrupted differ only in the
tokens the task names, so they have the same length.

- ``identifier-induction``: a local name ``<head>_<tail>`` (three tokens) is assigned, other
  lines follow, then ``return <head>_``; answer ``<tail>`` (copy the name seen before).
  Corrupted: the first occurrence has another tail, which becomes the answer (incorrect).
- ``bracket-match``: ``x = f(a, [b, g(c), d`` -> ``]`` (the innermost open bracket; the call in
  between is closed). Corrupted opens ``(`` instead of ``[`` (or the other way round) -> ``)``.
- ``attribute-recall``: ``__init__(self, <a>)`` stores ``self.<a> = <a>``; a later method
  ``return self.`` -> ``<a>``. Corrupted uses another name ``<b>`` throughout -> ``<b>``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from analysis.prompts.validate import TokenizerView
from storage.records import PairIn

HEADS = ["max", "min", "num", "old", "new", "first", "last", "total", "base", "full", "raw"]
TAILS = ["size", "count", "name", "index", "items", "value", "path", "len", "id", "key", "type"]
NAMES = [
    "name", "value", "size", "path", "data", "key", "items", "parent", "count", "mode", "level",
    "text", "lines", "stream", "source", "target", "result", "prefix", "encoding", "timeout",
    "args", "buffer", "module", "filename", "state", "options", "context", "limit", "root",
    "index", "offset", "length", "flags", "handler", "message", "default", "width", "pattern",
]  # fmt: skip
FUNCS = ["get", "join", "append", "update", "format", "split", "open", "check", "run", "read"]
VARS = ["x", "y", "n", "s", "i", "k", "v", "obj", "item", "line", "node", "arg", "val", "res"]
CLASSES = ["Reader", "Parser", "Handler", "Entry", "Config", "Record", "Node", "Buffer", "Item"]
BRACKETS = {"[": "]", "(": ")"}


class CodeTaskError(ValueError):
    """The tokenizer lacks the single-token words a code task needs."""


def _single(view: TokenizerView, words: list[str], prefix: str = "") -> list[str]:
    return [w for w in words if len(view.answer_tokens(prefix + w)) == 1]


def _next_token_is(view: TokenizerView, prompt: str, answer: str) -> bool:
    """The answer is one token and exactly the token that follows ``prompt``."""
    answer_ids = view.answer_tokens(answer)
    if len(answer_ids) != 1:
        return False
    return view.prompt_tokens(prompt + answer) == view.prompt_tokens(prompt) + answer_ids


def _pairs(
    view: TokenizerView,
    n: int,
    rng: random.Random,
    task: str,
    build: Callable[[random.Random], PairIn | None],
) -> list[PairIn]:
    """``n`` pairs from ``build``, each kept only when both answers are the next tokens."""
    pairs: list[PairIn] = []
    for _ in range(200 * n):
        if len(pairs) == n:
            return pairs
        pair = build(rng)
        if pair is None:
            continue
        clean, corrupted = view.prompt_tokens(pair.clean), view.prompt_tokens(pair.corrupted)
        if len(clean) != len(corrupted) or len(clean) > view.n_ctx:
            continue
        if _next_token_is(view, pair.clean, pair.correct) and _next_token_is(
            view, pair.corrupted, pair.incorrect
        ):
            pairs.append(pair)
    raise CodeTaskError(
        f"{task}: found only {len(pairs)} of {n} pairs whose answers are single next tokens "
        "for this tokenizer; it needs a tokenizer that keeps common Python words whole"
    )


def _require(task: str, words: list[str], need: int, what: str) -> list[str]:
    if len(words) < need:
        raise CodeTaskError(
            f"{task}: only {len(words)} {what} are single tokens for this tokenizer (need {need})"
        )
    return words


def identifier_induction(view: TokenizerView, n: int, rng: random.Random) -> list[PairIn]:
    task = "identifier-induction"
    heads = _require(task, _single(view, HEADS, " "), 3, "name heads")
    tails = _require(task, _single(view, TAILS), 3, "name tails")
    funcs, names = _single(view, FUNCS), _single(view, NAMES, " ")

    def build(r: random.Random) -> PairIn | None:
        head = r.choice(heads)
        tail, other_tail = r.sample(tails, 2)
        fn, arg, other = r.choice(funcs), r.choice(names).strip(), r.choice(names).strip()
        if arg == other:
            return None
        body = (
            "def {fn}(self, {arg}):\n    {head}_{tail} = {arg}.{other}\n"
            "    if not {arg}:\n        return None\n    return {head}_"
        )
        return PairIn(
            clean=body.format(fn=fn, arg=arg, other=other, head=head, tail=tail),
            corrupted=body.format(fn=fn, arg=arg, other=other, head=head, tail=other_tail),
            correct=tail,
            incorrect=other_tail,
            meta={"task": task, "name": f"{head.strip()}_{tail}"},
        )

    return _pairs(view, n, rng, task, build)


def bracket_match(view: TokenizerView, n: int, rng: random.Random) -> list[PairIn]:
    task = "bracket-match"
    names = _require(task, _single(view, VARS, " "), 5, "variable names")
    funcs = _require(task, _single(view, FUNCS, " "), 2, "function names")

    def build(r: random.Random) -> PairIn | None:
        opening, other = r.sample(list(BRACKETS), 2)
        fn, inner = r.sample(funcs, 2)
        lhs, a, b, c, d = r.sample(names, 5)
        line = "{lhs} = {fn}({a}, {o}{b}, {inner}({c}), {d}"
        fields = {"lhs": lhs, "fn": fn, "a": a, "b": b, "inner": inner, "c": c, "d": d}
        return PairIn(
            clean=line.format(o=opening, **fields),
            corrupted=line.format(o=other, **fields),
            correct=BRACKETS[opening],
            incorrect=BRACKETS[other],
            meta={"task": task, "open": opening},
        )

    return _pairs(view, n, rng, task, build)


def attribute_recall(view: TokenizerView, n: int, rng: random.Random) -> list[PairIn]:
    task = "attribute-recall"
    both = [w for w in _single(view, NAMES) if len(view.answer_tokens(" " + w)) == 1]
    names = _require(task, both, 4, "attribute names (with and without a leading space)")
    classes = _single(view, CLASSES, " ") or CLASSES
    methods = _single(view, FUNCS, " ") or FUNCS

    def build(r: random.Random) -> PairIn | None:
        attr, other = r.sample(names, 2)
        cls, method = r.choice(classes).strip(), r.choice(methods).strip()
        body = (
            "class {cls}:\n    def __init__(self, {a}):\n        self.{a} = {a}\n\n"
            "    def {method}(self):\n        return self."
        )
        return PairIn(
            clean=body.format(cls=cls, a=attr, method=method),
            corrupted=body.format(cls=cls, a=other, method=method),
            correct=attr,
            incorrect=other,
            meta={"task": task, "attribute": attr},
        )

    return _pairs(view, n, rng, task, build)


CODE_GENERATORS: dict[str, Callable[[TokenizerView, int, random.Random], list[PairIn]]] = {
    "identifier-induction": identifier_induction,
    "bracket-match": bracket_match,
    "attribute-recall": attribute_recall,
}
