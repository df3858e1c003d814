"""The token layout every masked-LM experiment here shares: five BERT specials, then the symbols.

Sequences are `[CLS] s_1 .. s_L [SEP]` with symbol s at id len(SPECIAL_TOKENS) + s, so an HMM's
states, a character vocabulary and BERT's embedding table all index the same ids, and "special"
is simply `id < len(SPECIAL_TOKENS)`.
"""

from __future__ import annotations

import torch

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(len(SPECIAL_TOKENS))
OFFSET = len(SPECIAL_TOKENS)


def wrap(symbols: torch.Tensor) -> torch.Tensor:
    """Symbol indices (N, L) -> token ids (N, L + 2) with [CLS] and [SEP] around each row."""
    ids = symbols + OFFSET
    n = ids.shape[0]
    cls = torch.full((n, 1), CLS, dtype=ids.dtype)
    sep = torch.full((n, 1), SEP, dtype=ids.dtype)
    return torch.cat([cls, ids, sep], dim=1)


def is_special(ids: torch.Tensor) -> torch.Tensor:
    return ids < OFFSET


def make_tokenizer(symbols: list[str]):
    """A BertTokenizer over the specials and `symbols`, built in memory (no hub).

    Only the HF collator needs it (its mask token, vocabulary size and special ids); text is
    encoded by index, so symbols may be any strings, a space included.
    """
    from transformers import BertTokenizer

    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *symbols])}
    if len(vocab) != OFFSET + len(symbols):
        raise ValueError("symbols must be distinct and must not repeat a special token")
    return BertTokenizer(vocab=vocab, do_lower_case=False)
