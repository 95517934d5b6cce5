"""Checking prompt pairs against a model: the same rules for imported and generated sets.

A valid pair: clean and corrupted are non-empty and tokenize (as the model will see them, with
BOS where the model prepends it) to the same number of tokens, fewer than or equal to the model's
context ``n_ctx``; each answer is exactly one token (text answers are tokenized without BOS; id
answers must be inside the vocabulary). Pairs of different lengths across a set are fine.

All problems are collected and reported together (up to ``MAX_REPORTED``), each naming the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis.prompts.files import Answer, RawPair
from storage.records import PairIn

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

MAX_REPORTED = 10


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
    ``model.to_tokens(text, prepend_bos=False)``."""

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

    def prompt_tokens(self, text: str) -> list[int]:
        return [int(t) for t in self.model.to_tokens(text, truncate=False)[0].tolist()]

    def answer_tokens(self, text: str) -> list[int]:
        if not text:
            return []
        ids = self.model.to_tokens(text, prepend_bos=False, truncate=False)[0]
        return [int(t) for t in ids.tolist()]

    @property
    def unk_id(self) -> int | None:
        """The unknown-token id, when it is distinct from BOS/EOS/PAD (GPT-2 reuses one)."""
        tok = self.tokenizer
        unk = tok.unk_token_id
        return None if unk in (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) else unk

    def unknown_chars(self, text: str) -> list[str]:
        """Characters of ``text`` that the tokenizer maps to its unknown token."""
        if self.unk_id is None or self.unk_id not in self.answer_tokens(text):
            return []
        return sorted({ch for ch in text if self.unk_id in self.answer_tokens(ch)})

    def show(self, ids: list[int]) -> str:
        return repr(self.tokenizer.convert_ids_to_tokens(ids))


def _resolve_answer(
    view: TokenizerView, answer: Answer, row: int, column: str, problems: list[str]
) -> tuple[str, int | None]:
    vocab = len(view.tokenizer)
    if answer.token_id is not None:
        if not 0 <= answer.token_id < vocab:
            problems.append(
                f"row {row}: {column} token id #{answer.token_id} is outside the vocabulary "
                f"(0..{vocab - 1})"
            )
            return "", answer.token_id
        return view.tokenizer.decode([answer.token_id]), answer.token_id
    ids = view.answer_tokens(answer.text)
    unknown = view.unknown_chars(answer.text)
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


def _check_prompts(view: TokenizerView, raw: RawPair, problems: list[str]) -> None:
    for column in ("clean", "corrupted"):
        if not getattr(raw, column).strip():
            problems.append(f"row {raw.row}: {column} is empty; every pair needs both prompts")
            return
    for column in ("clean", "corrupted"):
        unknown = view.unknown_chars(getattr(raw, column))
        if unknown:
            problems.append(
                f"row {raw.row}: {column} has characters the tokenizer does not know "
                f"({''.join(unknown)!r}); use characters in the model's vocabulary"
            )
    n_clean = len(view.prompt_tokens(raw.clean))
    n_corrupt = len(view.prompt_tokens(raw.corrupted))
    if n_clean != n_corrupt:
        problems.append(
            f"row {raw.row}: clean is {n_clean} tokens but corrupted is {n_corrupt}; "
            "make them tokenize to the same length (swap words that are one token each)"
        )
    longest = max(n_clean, n_corrupt)
    if longest > view.n_ctx:
        problems.append(
            f"row {raw.row}: prompt is {longest} tokens but the model's context is "
            f"{view.n_ctx}; shorten it"
        )


def validate_pairs(view: TokenizerView, raws: list[RawPair]) -> list[PairIn]:
    """Turn parsed rows into pairs for the store, or raise PromptValidationError."""
    if not raws:
        raise PromptValidationError(["the set is empty; give at least one pair"], 0)
    problems: list[str] = []
    pairs = []
    for raw in raws:
        _check_prompts(view, raw, problems)
        correct, correct_id = _resolve_answer(view, raw.correct, raw.row, "correct", problems)
        incorrect, incorrect_id = _resolve_answer(
            view, raw.incorrect, raw.row, "incorrect", problems
        )
        pairs.append(
            PairIn(
                raw.clean,
                raw.corrupted,
                correct,
                incorrect,
                correct_id,
                incorrect_id,
                dict(raw.meta),
            )
        )
    if problems:
        raise PromptValidationError(problems, len(raws))
    return pairs


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
