"""A local English text corpus, character-level, cut into fixed-length sequences.

No hub here, so the text comes from files shipped inside pinned packages (e.g. scikit-learn's dataset
descriptions), named as `package:glob`: the same bytes on any machine with the same pins.
Characters are the tokens, as in the authors' GLUE runs (which space-separated every character
before BERT's WordPiece). Every character of the corpus gets an id, so there is no [UNK] and every
sequence has the same number D of maskable tokens.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch

from common.errors import BadInput
from papers.mpt_lml.tokens import OFFSET, wrap


def corpus_files(specs: list[str]) -> list[Path]:
    files = []
    for spec in specs:
        package, sep, pattern = spec.partition(":")
        found = importlib.util.find_spec(package) if sep and package else None
        if found is None or not found.submodule_search_locations:
            raise BadInput(f"corpus: {spec!r} is not 'installed_package:glob'")
        root = Path(list(found.submodule_search_locations)[0])
        matched = sorted(root.glob(pattern))
        if not matched:
            raise BadInput(f"corpus: {spec!r} matches no file under {root}")
        files += matched
    return files


def read_corpus(specs: list[str]) -> str:
    """Lower-cased text of every matched file, whitespace runs collapsed to one space."""
    text = " ".join(p.read_text(encoding="utf-8", errors="replace") for p in corpus_files(specs))
    return re.sub(r"\s+", " ", text.lower()).strip()


def char_sequences(text: str, seq_len: int) -> tuple[list[str], torch.Tensor]:
    """(vocabulary of characters, token ids (n, seq_len + 2)) of consecutive non-overlapping chunks."""
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    symbols = torch.tensor([index[c] for c in text], dtype=torch.long)
    n = len(symbols) // seq_len
    if n < 2:
        raise BadInput(f"seq_len: {seq_len} leaves fewer than 2 sequences in a {len(text)}-character corpus")
    return vocab, wrap(symbols[: n * seq_len].reshape(n, seq_len))


def vocab_size(vocab: list[str]) -> int:
    return OFFSET + len(vocab)
