"""Random masks with an exact number of masked positions, drawn uniformly among the allowed positions.

The MPT identity averages over masks of one size, so the size must be exact (not Bernoulli per token):
ranking i.i.d. uniform keys and masking the `m` smallest gives every size-`m` subset the same
probability. Positions that may never be masked (special tokens) get an infinite key.
"""

from __future__ import annotations

import itertools
import math

import torch


def random_masks(
    allowed: torch.Tensor, sizes: torch.Tensor | int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Bool masks (B, L): row b masks `sizes[b]` positions drawn uniformly from `allowed[b]`."""
    allowed = allowed.bool()
    batch, _ = allowed.shape
    sizes = torch.as_tensor(sizes, dtype=torch.long).expand(batch)
    if bool((sizes > allowed.sum(-1)).any()) or bool((sizes < 0).any()):
        raise ValueError("mask size outside 0..number of maskable positions")
    keys = torch.rand(allowed.shape, generator=generator, dtype=torch.float64)
    keys = keys.masked_fill(~allowed, math.inf)
    ranks = keys.argsort(dim=-1).argsort(dim=-1)
    return ranks < sizes[:, None]


def random_subsets(dim: int, size: int, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """`count` uniform size-`size` subsets of range(dim), as sorted index rows (count, size)."""
    allowed = torch.ones(count, dim, dtype=torch.bool)
    return mask_indices(random_masks(allowed, size, generator))


def all_subsets(dim: int, size: int) -> torch.Tensor:
    """Every size-`size` subset of range(dim), as index rows (C(dim, size), size)."""
    return torch.tensor(list(itertools.combinations(range(dim), size)), dtype=torch.long).reshape(-1, size)


def mask_indices(masks: torch.Tensor) -> torch.Tensor:
    """Bool masks (P, D) that all mask the same number of positions -> sorted index rows (P, m)."""
    count, size = masks.shape[0], int(masks[0].sum()) if masks.shape[0] else 0
    return masks.nonzero()[:, 1].reshape(count, size)


def complement(indices: torch.Tensor, dim: int) -> torch.Tensor:
    """Index rows (P, m) -> the sorted indices they leave out, (P, dim - m)."""
    keep = torch.ones(indices.shape[0], dim, dtype=torch.bool)
    keep.scatter_(1, indices, False)
    return mask_indices(keep)


def rate_to_size(dim, rate: float):
    """The mask size of a masking rate: round(rate * dim), at least one token and at most all.

    `dim` may be an int or a LongTensor of per-sequence lengths; a rate outside (0, 1] is an error
    (it used to be clamped silently)."""
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and 0 < rate <= 1):
        raise ValueError(f"masking rate must lie in (0, 1], got {rate!r}")
    if isinstance(dim, torch.Tensor):
        return (rate * dim).round().long().clamp_min(1).minimum(dim)
    return min(dim, max(1, round(rate * dim)))
