"""Checking prompt pairs against a model: the same rules for imported and generated sets.

A valid pair: clean and corrupted are non-empty and tokenize (as the model will see them, with
BOS where the model prepends it) to the same number of tokens, fewer than or equal to the model's
context ``n_ctx``; each answer is exactly one token (text answers are tokenized without BOS; id
answers must be inside the vocabulary). Pairs of different lengths across a set are fine.

All problems are collected and reported together (up to ``MAX_REPORTED``), each naming the row.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis.prompts.files import Answer, RawPair
from storage.records import PairIn

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

MAX_REPORTED = 10
CHUNK = 4096  # rows tokenized per tokenizer call


class PromptValidationError(ValueError):
    """Pairs do not fit the model. ``problems`` lists one message per bad row."""

    def __init__(self, problems: list[str], n_rows: int) -> None:
        shown = problems[:MAX_REPORTED]
        more = len(problems) - len(shown)
        head = f"{len(problems)} problem(s) in {n_rows} row(s):"
        tail = [f"... and {more} more"] if more else []
        super().__init__("\n".join([head, *(f"  {p}" for p in shown), *tail]))
        self.problems = problems


@dataclass(frozen=True)
class TokenizerView:
    """Tokenization exactly as analyses will do it (``analysis.prompt_batch``): prompts with
    ``model.to_tokens(text)`` (the model's BOS convention), answers with
    ``model.to_tokens(text, prepend_bos=False)``.

    ``token_ids`` does the same for many texts in one tokenizer call and without tensors, row by
    row as ``to_tokens`` does for one text (BOS prepended or removed, a trailing EOS stripped);
    ``tests/analysis/test_prompts.py`` checks it against ``to_tokens`` on every zoo tokenizer.
    """

    model: TransformerBridge

    @classmethod
    def of(cls, model: TransformerBridge) -> TokenizerView:
        if getattr(model, "tokenizer", None) is None:
            raise ValueError("the model has no tokenizer; load it with its tokenizer files")
        return cls(model)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @property
    def n_ctx(self) -> int:
        return int(self.model.cfg.n_ctx)

    def token_ids(self, texts: Sequence[str], prepend_bos: bool | None = None) -> list[list[int]]:
        """Each text's ids as ``model.to_tokens(text, prepend_bos, truncate=False)[0]``."""
        cfg, tok = self.model.cfg, self.tokenizer
        if prepend_bos is None:
            prepend_bos = getattr(cfg, "default_prepend_bos", True)
        tokenizer_prepends_bos = getattr(cfg, "tokenizer_prepends_bos", True)
        inputs = list(texts)
        if (
            prepend_bos
            and not tokenizer_prepends_bos
            and tok.bos_token is not None
            and len(tok(tok.bos_token, add_special_tokens=False)["input_ids"]) == 1
        ):
            inputs = [tok.bos_token + t for t in inputs]
        rows: list[list[int]] = [list(r) for r in tok(inputs, truncation=False)["input_ids"]]
        eos = tok.eos_token_id
        if getattr(cfg, "tokenizer_appends_eos", False) and eos is not None:
            for row in rows:
                while len(row) > 1 and row[-1] == eos:
                    row.pop()
        if not prepend_bos and tokenizer_prepends_bos and tok.bos_token_id is not None:
            rows = [self._without_bos(row) for row in rows]
        return rows

    def _without_bos(self, row: list[int]) -> list[int]:
        tok = self.tokenizer
        at = 0
        left = getattr(tok, "padding_side", "right") != "right"
        if left and tok.bos_token_id != tok.pad_token_id and tok.bos_token_id in row:
            at = row.index(tok.bos_token_id)
        return row[:at] + row[at + 1 :]

    def prompt_tokens(self, text: str) -> list[int]:
        return self.token_ids([text])[0]

    def answer_tokens(self, text: str) -> list[int]:
        return self.token_ids([text], prepend_bos=False)[0] if text else []

    @property
    def unk_id(self) -> int | None:
        """The unknown-token id, when it is distinct from BOS/EOS/PAD (GPT-2 reuses one)."""
        tok = self.tokenizer
        unk = tok.unk_token_id
        return None if unk in (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) else unk

    def unknown_chars(self, text: str, ids: list[int] | None = None) -> list[str]:
        """Characters of ``text`` that the tokenizer maps to its unknown token (``ids``: the
        text's answer tokens when already known)."""
        unk = self.unk_id
        if unk is None or unk not in (self.answer_tokens(text) if ids is None else ids):
            return []
        chars = sorted(set(text))
        rows = self.token_ids(chars, False)
        return [ch for ch, row in zip(chars, rows, strict=True) if unk in row]

    def show(self, ids: list[int]) -> str:
        return repr(self.tokenizer.convert_ids_to_tokens(ids))


def _resolve_answer(
    view: TokenizerView,
    answer: Answer,
    ids: list[int],
    row: int,
    column: str,
    problems: list[str],
) -> tuple[str, int | None]:
    """An answer's stored text and id; ``ids`` are its answer tokens (for text answers)."""
    vocab = len(view.tokenizer)
    if answer.token_id is not None:
        if not 0 <= answer.token_id < vocab:
            problems.append(
                f"row {row}: {column} token id #{answer.token_id} is outside the vocabulary "
                f"(0..{vocab - 1})"
            )
            return "", answer.token_id
        return view.tokenizer.decode([answer.token_id]), answer.token_id
    unknown = view.unknown_chars(answer.text, ids)
    if unknown:
        problems.append(
            f"row {row}: {column} answer {answer.text!r} has characters the tokenizer does not "
            f"know ({''.join(unknown)!r}); use characters in the model's vocabulary"
        )
    elif len(ids) != 1:
        problems.append(
            f"row {row}: {column} answer {answer.text!r} is {len(ids)} tokens "
            f"({view.show(ids)}), not one; use a single-token answer (mind the leading space) "
            "or give its token id as #<id>"
        )
    return answer.text, None


def _check_prompts(
    view: TokenizerView,
    raw: RawPair,
    clean: list[int],
    corrupted: list[int],
    problems: list[str],
) -> None:
    """Row checks on the prompts; ``clean``/``corrupted`` are their prompt tokens."""
    for column in ("clean", "corrupted"):
        if not getattr(raw, column).strip():
            problems.append(f"row {raw.row}: {column} is empty; every pair needs both prompts")
            return
    unk = view.unk_id
    for column, ids in (("clean", clean), ("corrupted", corrupted)):
        unknown = view.unknown_chars(getattr(raw, column)) if unk is not None and unk in ids else []
        if unknown:
            problems.append(
                f"row {raw.row}: {column} has characters the tokenizer does not know "
                f"({''.join(unknown)!r}); use characters in the model's vocabulary"
            )
    if len(clean) != len(corrupted):
        problems.append(
            f"row {raw.row}: clean is {len(clean)} tokens but corrupted is {len(corrupted)}; "
            "make them tokenize to the same length (swap words that are one token each)"
        )
    longest = max(len(clean), len(corrupted))
    if longest > view.n_ctx:
        problems.append(
            f"row {raw.row}: prompt is {longest} tokens but the model's context is "
            f"{view.n_ctx}; shorten it"
        )


def _answer_ids(view: TokenizerView, answers: list[Answer]) -> list[list[int]]:
    texts = [a.text for a in answers if a.token_id is None and a.text]
    batched = iter(view.token_ids(texts, prepend_bos=False)) if texts else iter(())
    return [next(batched) if a.token_id is None and a.text else [] for a in answers]


def iter_valid_pairs(
    view: TokenizerView,
    raws: Iterable[RawPair],
    progress: Callable[[int], None] | None = None,
) -> Iterator[PairIn]:
    """Turn parsed rows into pairs for the store, ``CHUNK`` rows at a time, holding one chunk.

    Pairs are yielded until the first bad row; checking goes on to the end, then
    PromptValidationError lists every problem. ``progress(rows_done)`` follows each chunk.
    """
    problems: list[str] = []
    done = 0
    rows = iter(raws)
    while chunk := list(itertools.islice(rows, CHUNK)):
        cleans = view.token_ids([r.clean for r in chunk])
        corrupteds = view.token_ids([r.corrupted for r in chunk])
        corrects = _answer_ids(view, [r.correct for r in chunk])
        incorrects = _answer_ids(view, [r.incorrect for r in chunk])
        for i, raw in enumerate(chunk):
            _check_prompts(view, raw, cleans[i], corrupteds[i], problems)
            correct, correct_id = _resolve_answer(
                view, raw.correct, corrects[i], raw.row, "correct", problems
            )
            incorrect, incorrect_id = _resolve_answer(
                view, raw.incorrect, incorrects[i], raw.row, "incorrect", problems
            )
            if not problems:
                meta = dict(raw.meta)
                yield PairIn(
                    raw.clean, raw.corrupted, correct, incorrect, correct_id, incorrect_id, meta
                )
        done += len(chunk)
        if progress is not None:
            progress(done)
    if not done:
        raise PromptValidationError(["the set is empty; give at least one pair"], 0)
    if problems:
        raise PromptValidationError(problems, done)


def validate_pairs(
    view: TokenizerView,
    raws: Sequence[RawPair],
    progress: Callable[[int, int], None] | None = None,
) -> list[PairIn]:
    """``iter_valid_pairs`` as a list; ``progress(done, total)`` after each chunk."""
    report = None if progress is None else (lambda done: progress(done, len(raws)))
    return list(iter_valid_pairs(view, raws, report))


def pairs_as_raw(pairs: list[PairIn]) -> list[RawPair]:
    """Stored/generated pairs in the parsed-row form, so they pass through the same checks."""
    return [
        RawPair(
            row=i + 1,
            clean=p.clean,
            corrupted=p.corrupted,
            correct=Answer(p.correct, p.correct_id)
            if p.correct_id is None
            else Answer("", p.correct_id),
            incorrect=Answer(p.incorrect, p.incorrect_id)
            if p.incorrect_id is None
            else Answer("", p.incorrect_id),
            meta=dict(p.meta),
        )
        for i, p in enumerate(pairs)
    ]
