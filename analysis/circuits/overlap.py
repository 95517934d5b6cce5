"""Overlap of circuits found on different tasks of one model: set arithmetic only. Torch-free.

Two circuits are compared as sets of nodes: attention heads (``a{L}.h{H}``, the measure of
Merullo et al., "Circuit Component Reuse Across Tasks in Transformer Language Models") or all
nodes (heads and MLPs ``m{L}``; ``input`` and ``logits`` belong to every circuit and are left
out). For sets A and B:

- Jaccard ``|A ∩ B| / |A ∪ B|``;
- overlap coefficient ``|A ∩ B| / min(|A|, |B|)`` (1 when one circuit contains the other).

Both are undefined (``None``) when the denominator is 0. ``membership`` says, for every head of
a grid, which circuits hold it, and ``category`` names the group it falls in: in every circuit,
in some of them (how many), in exactly one (task-specific to it) or in none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

HEAD_RE = re.compile(r"^a(\d+)\.h(\d+)$")
MLP_RE = re.compile(r"^m(\d+)$")
LEVELS = ("heads", "nodes")


def is_head(name: str) -> bool:
    return HEAD_RE.match(name) is not None


def level_set(names: Iterable[str], level: str) -> frozenset[str]:
    """The heads (``level="heads"``) or heads and MLPs (``"nodes"``) among node names."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    keep = is_head if level == "heads" else lambda n: is_head(n) or MLP_RE.match(n) is not None
    return frozenset(n for n in names if keep(n))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float | None:
    union = len(a | b)
    return len(a & b) / union if union else None


def overlap_coefficient(a: frozenset[str], b: frozenset[str]) -> float | None:
    smaller = min(len(a), len(b))
    return len(a & b) / smaller if smaller else None


@dataclass(frozen=True)
class PairOverlap:
    """The overlap of circuits ``a`` and ``b`` (labels) at one level."""

    a: str
    b: str
    n_a: int
    n_b: int
    n_shared: int
    n_union: int
    jaccard: float | None
    overlap: float | None


def pair_overlap(a: str, b: str, set_a: frozenset[str], set_b: frozenset[str]) -> PairOverlap:
    return PairOverlap(
        a, b, len(set_a), len(set_b), len(set_a & set_b), len(set_a | set_b),
        jaccard(set_a, set_b), overlap_coefficient(set_a, set_b),
    )  # fmt: skip


def pairwise(sets: Mapping[str, frozenset[str]]) -> list[PairOverlap]:
    """Every unordered pair of circuits, in the mapping's order."""
    labels = list(sets)
    return [
        pair_overlap(a, b, sets[a], sets[b]) for i, a in enumerate(labels) for b in labels[i + 1 :]
    ]


def matrix(sets: Mapping[str, frozenset[str]], measure: str) -> list[list[float | None]]:
    """The square matrix of ``measure`` (``jaccard`` or ``overlap``), diagonal included."""
    fn = {"jaccard": jaccard, "overlap": overlap_coefficient}[measure]
    values = list(sets.values())
    return [[fn(a, b) for b in values] for a in values]


def membership(sets: Mapping[str, frozenset[str]], names: Iterable[str]) -> dict[str, list[str]]:
    """For each name, the labels of the circuits that hold it (in the mapping's order)."""
    return {n: [label for label, members in sets.items() if n in members] for n in names}


def category(holders: Sequence[str], n_circuits: int) -> str:
    """``all`` (in every circuit), ``some:k`` (in k of them), ``only:<label>``, or ``none``."""
    k = len(holders)
    if k == 0:
        return "none"
    if k == n_circuits:
        return "all"
    if k == 1:
        return f"only:{holders[0]}"
    return f"some:{k}"


def in_every(sets: Mapping[str, frozenset[str]]) -> frozenset[str]:
    values = list(sets.values())
    return frozenset.intersection(*values) if values else frozenset()


def in_any(sets: Mapping[str, frozenset[str]]) -> frozenset[str]:
    return frozenset().union(*sets.values())


def only_in(sets: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """Per circuit, the members no other circuit has (its task-specific nodes)."""
    out = {}
    for label, members in sets.items():
        others = in_any({k: v for k, v in sets.items() if k != label})
        out[label] = members - others
    return out


def head_sort_key(name: str) -> tuple[int, int, int]:
    """Heads and MLPs in layer order (a layer's heads before its MLP); others last."""
    if match := HEAD_RE.match(name):
        return int(match[1]), 0, int(match[2])
    if match := MLP_RE.match(name):
        return int(match[1]), 1, 0
    return 10**9, 0, 0
