"""Character-level tokenizers for the zoo models.

A zoo tokenizer maps every character of a fixed alphabet to one token, plus three specials:
``<bos>`` (id 0, prepended to every encoded text), ``<pad>`` (id 1) and ``<unk>`` (id 2).
Characters of the alphabet get ids 3, 4, ... in alphabet order. It is a
``PreTrainedTokenizerFast`` saved to and reloaded from a folder, so TransformerLens sees an ordinary
on-disk tokenizer (an in-memory one lacks ``name_or_path`` and makes TransformerLens try the hub).
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

BOS, PAD, UNK = "<bos>", "<pad>", "<unk>"
SPECIALS = (BOS, PAD, UNK)


def char_vocab(alphabet: str) -> dict[str, int]:
    """Token ids of a char tokenizer over ``alphabet`` (specials first)."""
    if len(set(alphabet)) != len(alphabet):
        raise ValueError(f"alphabet {alphabet!r} repeats a character")
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    return vocab


def build_char_tokenizer(alphabet: str, folder: Path) -> PreTrainedTokenizerFast:
    """Build a char tokenizer over ``alphabet``, save it in ``folder`` and reload it from there."""
    vocab = char_vocab(alphabet)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Every single character is its own pre-token, so WordLevel sees one char at a time.
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()  # ids back to text with no separators
    save_bos_tokenizer(core, folder, unk_token=UNK)
    return load_char_tokenizer(folder)


def load_char_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    """Reload a saved zoo tokenizer from its folder (offline, no hub lookup)."""
    return PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)


def save_bos_tokenizer(core: Tokenizer, folder: Path, unk_token: str | None = None) -> None:
    """Save ``core`` to ``folder`` as a fast tokenizer that prepends ``<bos>`` to every text."""
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, core.token_to_id(BOS))]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=BOS,
        pad_token=PAD,
        unk_token=unk_token,
        add_bos_token=True,
        name_or_path=str(folder),
        padding_side="right",
    )
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(folder))
