"""Task generators: seeded clean/corrupted pairs that are valid for a given model's tokenizer.

Each generator adapts to the tokenizer: on a character-level tokenizer (the zoo models) it builds
character tasks; on a word-piece tokenizer (GPT-2, Llama, ...) it builds the usual word tasks
from single-token words. Every generated set goes through ``validate_pairs`` before it is
returned, so a generator can never hand out a pair that analyses would reject.

- ``induction``: clean = a string ``s`` of distinct units, then a prefix ``s[:k]`` of a second
  copy; correct = ``s[k]`` (what induction predicts). Corrupted = the same, except the unit at
  ``s[k]`` in the FIRST copy is replaced by a unit ``c`` not in ``s``; so induction now predicts
  ``c`` (the incorrect answer). One token differs; lengths match.
- ``ioi`` (word tokenizers only): "When A and B went to the P, B gave a O to" -> " A" (correct,
  the indirect object) vs " B" (incorrect, the subject). Corrupted replaces the second B by A,
  which flips which name is the indirect object (the answer of the corrupted prompt is B).
- ``greater-than``: char tokenizers: ``<filler>YY>`` -> the tens digit of some ZZ > YY; correct
  is a digit above Y1, incorrect one below (so 1 <= Y1 <= 8); corrupted uses YY = ``01``.
  Word tokenizers (Hanna et al. 2023): "The N lasted from the year 17YY to the year 17" ->
  correct a two-digit token above YY, incorrect one below; corrupted uses 1701.
- ``needle`` (any tokenizer, ``analysis.prompts.needle``): a needle of distinct units in filler
  at a grid of context lengths and depths, then the needle's first units; correct = its next
  unit. Options (``NeedleOptions``): needle length, query length, contexts, depths.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from typing import TYPE_CHECKING

from analysis.prompts.code_tasks import CODE_GENERATORS, CodeTaskError
from analysis.prompts.needle import NeedleOptions, NeedleOptionsError, needle
from analysis.prompts.validate import TokenizerView, pairs_as_raw, validate_pairs
from storage.records import PairIn

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

NAMES = [
    "Mary",
    "John",
    "Alice",
    "Bob",
    "Tom",
    "James",
    "Sarah",
    "Paul",
    "Anna",
    "David",
    "Laura",
    "Mark",
    "Emma",
    "Peter",
    "Lisa",
    "Kevin",
    "Rachel",
    "Daniel",
    "Jessica",
    "Michael",
    "Susan",
    "Brian",
    "Linda",
    "Steven",
    "Karen",
    "Eric",
    "Amy",
    "Jason",
    "Kate",
    "Adam",
]
PLACES = [
    "store",
    "park",
    "school",
    "office",
    "garden",
    "station",
    "market",
    "house",
    "beach",
    "library",
]
OBJECTS = ["drink", "book", "ring", "letter", "bag", "key", "gift", "ball", "cake", "card"]
EVENTS = [
    "war",
    "expedition",
    "trial",
    "project",
    "strike",
    "drought",
    "voyage",
    "reign",
    "journey",
    "contract",
]
WORDS = [
    "cat",
    "dog",
    "tree",
    "house",
    "car",
    "bird",
    "fish",
    "book",
    "door",
    "water",
    "light",
    "stone",
    "river",
    "cloud",
    "music",
    "table",
    "chair",
    "green",
    "red",
    "blue",
    "apple",
    "paper",
    "glass",
    "horse",
    "money",
    "night",
    "world",
    "city",
    "field",
    "phone",
]


class GeneratorError(ValueError):
    """The task cannot be generated for this model's tokenizer; the message says why."""


def is_char_level(view: TokenizerView) -> bool:
    """True when every lowercase letter is one token and letters do not merge."""
    text = string.ascii_lowercase
    return len(view.answer_tokens(text)) == len(text)


def _single_tokens(view: TokenizerView, words: list[str], prefix: str = " ") -> list[str]:
    return [prefix + w for w in words if len(view.answer_tokens(prefix + w)) == 1]


def _induction_units(view: TokenizerView) -> tuple[list[str], str]:
    if is_char_level(view):
        return list(string.ascii_lowercase), ""
    units = _single_tokens(view, WORDS)
    if len(units) < 12:
        raise GeneratorError("induction: the tokenizer has too few single-token words")
    return units, ""


def induction(view: TokenizerView, n: int, rng: random.Random) -> list[PairIn]:
    units, sep = _induction_units(view)
    pairs = []
    room = min(len(units) - 1, max(4, (view.n_ctx - 2) // 2))
    for _ in range(n):
        length = rng.randint(min(6, room), min(16, room))
        seq = rng.sample(units, length + 1)
        first, spare = seq[:length], seq[length]
        k = rng.randint(1, length - 1)
        corrupted_first = first[:k] + [spare] + first[k + 1 :]
        pairs.append(
            PairIn(
                clean=sep.join(first + first[:k]),
                corrupted=sep.join(corrupted_first + first[:k]),
                correct=first[k],
                incorrect=spare,
                meta={"task": "induction", "period": length, "k": k},
            )
        )
    return pairs


def induction_contrast_pairs(
    units: list[str],
    n: int,
    rng: random.Random,
    periods: tuple[int, int] = (5, 10),
    corrupt: str = "all",
) -> list[PairIn]:
    """Induction pairs whose corrupted prompt changes *every* token: a block ``s`` of ``p``
    distinct units, then its first ``j`` units again (answer ``s[j]``); ``corrupt="all"``:
    the same construction on units disjoint from ``s`` (incorrect = its own next unit), so the
    previous-token -> induction-key path differs too, as the zoo's ground truth assumes;
    ``corrupt="block"``: only the first block is replaced (incorrect = a unit in neither)."""
    pairs = []
    for _ in range(n):
        p = rng.randint(*periods)
        block = rng.sample(units, p)
        other = rng.sample([u for u in units if u not in block], p)
        j = rng.randint(1, p - 1)
        if corrupt == "all":
            corrupted, wrong = "".join(other) + "".join(other[:j]), other[j]
        else:
            corrupted = "".join(other) + "".join(block[:j])
            wrong = rng.choice([u for u in units if u not in block and u not in other])
        clean = "".join(block) + "".join(block[:j])
        pairs.append(PairIn(clean=clean, corrupted=corrupted, correct=block[j], incorrect=wrong))
    return pairs


def induction_contrast(view: TokenizerView, n: int, rng: random.Random) -> list[PairIn]:
    units, _ = _induction_units(view)
    longest = min(10, len(units) // 2, max(2, (view.n_ctx - 2) // 2))
    return induction_contrast_pairs(units, n, rng, (min(5, longest), longest))


def ioi(view: TokenizerView, n: int, rng: random.Random) -> list[PairIn]:
    if is_char_level(view):
        raise GeneratorError(
            "ioi needs a word-level tokenizer with single-token names; this model is "
            "character-level (a zoo model): use the induction or greater-than task"
        )
    names = _single_tokens(view, NAMES)
    if len(names) < 4:
        raise GeneratorError("ioi: fewer than 4 names are single tokens for this tokenizer")
    pairs = []
    for _ in range(n):
        a, b = rng.sample(names, 2)
        place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
        template = "When{0} and{1} went to the {2},{3} gave a {4} to"
        pairs.append(
            PairIn(
                clean=template.format(a, b, place, b, obj),
                corrupted=template.format(a, b, place, a, obj),
                correct=a,
                incorrect=b,
                meta={"task": "ioi", "io": a.strip(), "s": b.strip()},
            )
        )
    return pairs


def _greater_than_char(view: TokenizerView, n: int, rng: random.Random) -> list[PairIn]:
    pairs = []
    for _ in range(n):
        yy = rng.randint(10, 89)
        tens = yy // 10
        filler = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(0, 6)))
        pairs.append(
            PairIn(
                clean=f"{filler}{yy:02d}>",
                corrupted=f"{filler}01>",
                correct=str(rng.randint(tens + 1, 9)),
                incorrect=str(rng.randint(0, tens - 1)),
                meta={"task": "greater-than", "yy": yy},
            )
        )
    return pairs


def greater_than(view: TokenizerView, n: int, rng: random.Random) -> list[PairIn]:
    if is_char_level(view):
        if view.unknown_chars(string.digits + ">"):
            raise GeneratorError(
                "greater-than on a character-level model needs the digits and '>' in its "
                "vocabulary (zoo:greater-than-3l has them; zoo:induction-2l does not)"
            )
        return _greater_than_char(view, n, rng)
    two_digit = [f"{v:02d}" for v in range(2, 99) if len(view.answer_tokens(f"{v:02d}")) == 1]
    if len(two_digit) < 90 or len(view.answer_tokens(" 1732")) != 2:
        raise GeneratorError(
            "greater-than needs a tokenizer that splits years as 17|YY (like GPT-2)"
        )
    pairs = []
    for _ in range(n):
        yy = rng.randint(2, 98)
        event = rng.choice(EVENTS)
        template = "The {0} lasted from the year 17{1} to the year 17"
        pairs.append(
            PairIn(
                clean=template.format(event, f"{yy:02d}"),
                corrupted=template.format(event, "01"),
                correct=f"{rng.randint(yy + 1, 99):02d}",
                incorrect=f"{rng.randint(1, yy - 1):02d}" if yy > 1 else "00",
                meta={"task": "greater-than", "yy": yy},
            )
        )
    return pairs


GENERATORS: dict[str, Callable[[TokenizerView, int, random.Random], list[PairIn]]] = {
    "induction": induction,
    "induction-contrast": induction_contrast,
    "ioi": ioi,
    "greater-than": greater_than,
    "needle": lambda view, n, rng: needle(view, n, rng, NeedleOptions()),
    **CODE_GENERATORS,
}


def generate_pairs(
    model: TransformerBridge,
    task: str,
    n: int,
    seed: int = 0,
    needle_options: NeedleOptions | None = None,
) -> list[PairIn]:
    """``n`` seeded pairs of ``task`` for ``model``, validated against its tokenizer
    (``needle_options`` shape the ``needle`` task and are refused for any other)."""
    if task not in GENERATORS:
        raise GeneratorError(f"unknown task {task!r}; choose one of: {', '.join(GENERATORS)}")
    if n < 1:
        raise GeneratorError(f"--n must be at least 1 (got {n})")
    if needle_options is not None and task != "needle" and needle_options != NeedleOptions():
        raise GeneratorError(f"needle options apply to the needle task only, not {task!r}")
    view = TokenizerView.of(model)
    rng = random.Random(seed)
    try:
        if task == "needle":
            pairs = needle(view, n, rng, needle_options or NeedleOptions())
        else:
            pairs = GENERATORS[task](view, n, rng)
    except (CodeTaskError, NeedleOptionsError) as exc:
        raise GeneratorError(str(exc)) from None
    return validate_pairs(view, pairs_as_raw(pairs))
