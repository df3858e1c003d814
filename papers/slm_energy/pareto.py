"""Pareto frontiers over batch sizes and the batch at which batching stops paying: pure functions.

A batch size is one point (throughput, cost), cost being a latency or the energy per token. A point is
on the frontier when no other point has at least its throughput at no more than its cost, one of them
strictly better; identical points do not dominate each other, so ties stay on the frontier together.

The saturation ("Pareto") batch is read off the throughput-latency frontier, in batch order: the
smallest frontier batch B* that no larger frontier batch beats by more than a tolerance,
T(B) <= (1 + tol) T(B*) for every larger frontier B. Comparing with every larger batch, not just the
next one, keeps a noisy dip (a batch that happens to run slower than its neighbours) from stopping the
search early, and slow growth that adds up past the tolerance from stopping it at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _finite(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def pareto_mask(gain: Sequence[float | None], cost: Sequence[float | None]) -> np.ndarray:
    """True where a point is on the frontier (higher gain, lower cost is better).

    A point with a missing (None or NaN) gain or cost is on no frontier and dominates nothing.
    """
    g, c = _finite(gain), _finite(cost)
    if g.shape != c.shape:
        raise ValueError(f"gain and cost differ in length ({len(g)} vs {len(c)})")
    valid = np.isfinite(g) & np.isfinite(c)
    mask = valid.copy()
    for i in np.flatnonzero(valid):
        other = valid & (g >= g[i]) & (c <= c[i]) & ((g > g[i]) | (c < c[i]))
        mask[i] = not other.any()
    return mask


def saturation_index(batches: Sequence[int], throughput: Sequence[float], tolerance: float) -> int:
    """Index (into the given sequences) of the smallest batch that no larger batch out-runs by more
    than `tolerance` (a fraction: 0.05 is 5%)."""
    if not len(batches) or len(batches) != len(throughput):
        raise ValueError("saturation needs one throughput per batch, at least one")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, not {tolerance}")
    order = np.argsort(np.asarray(batches), kind="stable")
    t = _finite(throughput)[order]
    if not np.isfinite(t).all():
        raise ValueError("saturation needs a finite throughput at every batch")
    later_max = np.maximum.accumulate(t[::-1])[::-1]  # later_max[i] = max(t[i:])
    for pos in range(len(t) - 1):
        if later_max[pos + 1] <= (1 + tolerance) * t[pos]:
            return int(order[pos])
    return int(order[-1])  # nothing beyond the largest batch can beat it


def saturation_point(
    batches: Sequence[int],
    throughput: Sequence[float | None],
    latency: Sequence[float | None],
    tolerance: float,
) -> dict:
    """The Pareto batch of one model's sweep: saturation over its throughput-latency frontier.

    saturated: the sweep measured a batch larger than B* (a larger frontier batch gains at most the
    tolerance; one off the frontier was slower); a B* that is the largest batch measured means
    throughput was still growing where the sweep ended.
    """
    on_front = pareto_mask(throughput, latency)
    idx = np.flatnonzero(on_front)
    if not len(idx):
        raise ValueError("no point has both a throughput and a latency")
    b = [int(batches[i]) for i in idx]
    t = [float(throughput[i]) for i in idx]
    pick = saturation_index(b, t, tolerance)
    measured = [int(batches[i]) for i in np.flatnonzero(np.isfinite(_finite(throughput)))]
    return {
        "index": int(idx[pick]),
        "batch": b[pick],
        "throughput": t[pick],
        "saturated": b[pick] < max(measured),
        "frontier_batches": sorted(b),
    }


def cheapest_index(cost: Sequence[float | None]) -> int | None:
    """Where the cost (energy per token) is lowest; None when no point has one."""
    c = _finite(cost)
    if not np.isfinite(c).any():
        return None
    return int(np.nanargmin(c))


def batch_grid(max_batch: int) -> list[int]:
    """Powers of two up to max_batch: the batch axis of predicted curves, like the measured sweeps."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, not {max_batch}")
    return [2**i for i in range(int(np.log2(max_batch)) + 1)]


def largest_batch_that_fits(capacity_bytes: float, weight_bytes: float, bytes_per_sequence: float) -> int:
    """Sequences whose KV cache fits beside the weights (0 when the weights alone do not fit)."""
    if bytes_per_sequence <= 0:
        raise ValueError("bytes_per_sequence must be > 0")
    return max(int((capacity_bytes - weight_bytes) // bytes_per_sequence), 0)
