"""The cumulative MPT score from a curve over masking rates: the authors' Riemann area and a
consistent estimator that maps rates to mask sizes exactly.

The cumulative score is a sum over mask *sizes*, log p(x) = sum_{m=1..D} S(m). A curve is measured
at rates r on a grid (the authors': 0.01..0.99), each read as the size m(r) = round(r D) clamped to
1..D. The authors' area, -sum_r S(m(r)) * step * D, weights every rate alike; but rates fall on
sizes unevenly (on a 99-rate grid with D = 32, m = 1 takes four rates and m = D one) and the grid
stops short of both ends, where S is largest (m = 1) and smallest (m = D). So the area is biased,
and for a curve falling with m it under-states -log p(x) (62.41 against 63.15 for the exact HMM).

`cumulative_from_curve` instead averages the values at each measured size, fills the sizes between
measured ones by linear interpolation in m, and sums over every size 1..D. Where every size is
measured (step <= 1/D, or a curve measured by size) it is the exact sum, so it is unbiased whenever
the S values are; on a coarser grid its error is the interpolation's, which vanishes as the grid is
refined (consistent) provided both ends m = 1 and m = D are measured (`with_ends` adds their rates).
Unmeasured ends are held flat from the nearest measured size, and reported as such.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def check_grid(rates: Sequence[float], dims: int) -> np.ndarray:
    """The rates as an array, each in (0, 1], with dims >= 1; ValueError naming what is wrong."""
    if int(dims) < 1:
        raise ValueError(f"dims must be >= 1, got {dims}")
    r = np.asarray(rates, dtype=float)
    if r.ndim != 1 or len(r) == 0:
        raise ValueError("need at least one masking rate")
    if not np.all(np.isfinite(r)) or np.any(r <= 0) or np.any(r > 1):
        bad = r[(r <= 0) | (r > 1) | ~np.isfinite(r)]
        raise ValueError(f"masking rates must lie in (0, 1], got {bad[:3]}")
    return r


def sizes_of(rates: Sequence[float], dims: int) -> np.ndarray:
    """m(r) = round(r D) clamped to 1..D, as `masks.rate_to_size` (Python's round: half to even)."""
    r = check_grid(rates, dims)
    return np.array([min(dims, max(1, round(x * dims))) for x in r], dtype=int)


def with_ends(rates: Sequence[float], dims: int) -> list[float]:
    """The grid plus the rates 1/D and 1, so that sizes 1 and D are measured."""
    return sorted({*map(float, rates), 1.0 / dims, 1.0})


def authors_area(values: np.ndarray, step: float, dims: int) -> np.ndarray:
    """The authors' integrate_area, -sum_r S(r) * step * D (NaN rates skipped); values (R,) or (R, N)."""
    if not 0 < step < 1:
        raise ValueError(f"step must lie in (0, 1), got {step}")
    return -np.nansum(np.asarray(values, dtype=float), axis=0) * step * dims


def size_weights(rates: Sequence[float], dims: int) -> tuple[np.ndarray, bool]:
    """(w (R,), ends_measured): sum_r w_r S(r) is the consistent estimate of sum_m S(m)."""
    sizes = sizes_of(rates, dims)
    measured = np.unique(sizes)
    # the interpolation matrix from measured sizes to every size 1..D, summed over sizes
    per_size = np.zeros(len(measured))
    for m in range(1, dims + 1):
        k = np.searchsorted(measured, m)
        if k < len(measured) and measured[k] == m:
            per_size[k] += 1
        elif k == 0:
            per_size[0] += 1  # below the smallest measured size: held flat
        elif k == len(measured):
            per_size[-1] += 1  # above the largest: held flat
        else:
            lo, hi = measured[k - 1], measured[k]
            frac = (m - lo) / (hi - lo)
            per_size[k - 1] += 1 - frac
            per_size[k] += frac
    weights = np.empty(len(sizes))
    for k, m in enumerate(measured):  # share a size's weight among the rates that measured it
        picked = sizes == m
        weights[picked] = per_size[k] / picked.sum()
    return weights, bool(measured[0] == 1 and measured[-1] == dims)


def cumulative_from_curve(rates: Sequence[float], values: np.ndarray, dims: int) -> tuple[np.ndarray, bool]:
    """(estimate of log p(x) = sum_m S(m), ends_measured) from S at `rates`; values (R,) or (R, N)."""
    weights, ends = size_weights(rates, dims)
    v = np.asarray(values, dtype=float)
    if v.shape[0] != len(weights):
        raise ValueError(f"{v.shape[0]} values for {len(weights)} rates")
    if not np.all(np.isfinite(v)):
        raise ValueError("the curve has a value that is not finite")
    return np.tensordot(weights, v, axes=(0, 0)), ends


def mean_sem(values) -> tuple[float, float]:
    """Mean and its standard error (ddof 1; 0 for one value)."""
    v = np.asarray(values, dtype=float).ravel()
    if len(v) == 0:
        raise ValueError("no values")
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
