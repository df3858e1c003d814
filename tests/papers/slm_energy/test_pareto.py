"""Frontier and saturation on hand-built curves whose answers are known."""

import math

import numpy as np
import pytest

from papers.slm_energy.pareto import (
    batch_grid,
    cheapest_index,
    largest_batch_that_fits,
    pareto_mask,
    saturation_index,
    saturation_point,
)


def test_dominated_points_leave_the_frontier():
    # (throughput, latency): (15, 3) is beaten by (20, 2) on both; (30, 4) is the fastest
    mask = pareto_mask([10, 20, 15, 30], [1, 2, 3, 4])
    assert mask.tolist() == [True, True, False, True]


def test_ties_stay_together_and_equal_gain_keeps_the_cheaper():
    assert pareto_mask([10, 10, 20], [1, 1, 2]).tolist() == [True, True, True]
    assert pareto_mask([10, 10], [1, 2]).tolist() == [True, False]
    assert pareto_mask([10, 12], [3, 3]).tolist() == [False, True]


def test_missing_values_are_on_no_frontier_and_dominate_nothing():
    assert pareto_mask([10, None, 30, math.nan], [1, 0.1, 3, 0.1]).tolist() == [True, False, True, False]
    assert not pareto_mask([None], [None]).any()


def test_single_point():
    assert pareto_mask([5.0], [7.0]).tolist() == [True]
    star = saturation_point([8], [5.0], [7.0], 0.05)
    assert star["batch"] == 8 and star["index"] == 0 and not star["saturated"]


def test_noise_dip_does_not_stop_the_search_early():
    batches = [1, 2, 4, 8, 16, 32, 64]
    tput = [100, 190, 260, 250, 300, 305, 303]  # B=8 dips below B=4; B=64 below B=32
    latency = [1, 2, 3, 4, 5, 6, 7]
    star = saturation_point(batches, tput, latency, 0.05)
    # frontier drops the dips; B=16 is the first no later batch beats by > 5% (305 <= 1.05 * 300)
    assert star["frontier_batches"] == [1, 2, 4, 16, 32]
    assert star["batch"] == 16 and star["saturated"]
    # a rule that stops at the first step gaining < tol would have stopped at the dip (B=4)
    assert tput[3] / tput[2] - 1 < 0.05


def test_a_slower_largest_batch_still_counts_as_saturation():
    star = saturation_point([1, 2, 4], [10, 20, 15], [1, 2, 3], 0.05)
    assert star["frontier_batches"] == [1, 2] and star["batch"] == 2 and star["saturated"]
    grew = saturation_point([1, 2, 4], [10, 20, 30], [1, 2, 3], 0.05)
    assert grew["batch"] == 4 and not grew["saturated"]


def test_slow_growth_that_adds_up_is_followed():
    batches = [1, 2, 4, 8, 16]
    tput = [100, 104, 108, 112, 116]  # each step < 5%, together 16%
    assert batches[saturation_index(batches, tput, 0.05)] == 8  # 116 <= 1.05 * 112, 116 > 1.05 * 108


def test_saturation_is_order_free_and_tolerance_zero_takes_the_maximum():
    assert saturation_index([4, 1, 2], [30, 10, 20], 0.0) == 0
    assert saturation_index([1, 2, 4], [10, 30, 30], 0.0) == 1  # a tie: the smaller batch
    assert saturation_index([1, 2, 4], [10, 30, 31], 0.5) == 1


def test_saturation_rejects_bad_input():
    with pytest.raises(ValueError):
        saturation_index([], [], 0.05)
    with pytest.raises(ValueError):
        saturation_index([1, 2], [1.0], 0.05)
    with pytest.raises(ValueError):
        saturation_index([1], [1.0], -0.1)
    with pytest.raises(ValueError):
        saturation_point([1, 2], [None, None], [1, 2], 0.05)


def test_saturation_of_a_closed_form_curve():
    """T(B) = B / (a + b B) increases, so B* is the first batch with (1 + tol) T(B) >= T(B_max), i.e.
    B >= a T_max / (1 + tol - b T_max): about a / (b tol) when T_max is near the ceiling 1 / b."""
    a, b, tol = 2.0, 0.01, 0.05
    grid = np.arange(1, 200001)
    t = grid / (a + b * grid)
    t_max = t[-1]
    expected = math.ceil(a * t_max / (1 + tol - b * t_max))
    assert grid[saturation_index(grid, t, tol)] == expected
    assert abs(expected - a / (b * tol)) / (a / (b * tol)) < 0.05


def test_cheapest_and_grid_and_fit():
    assert cheapest_index([None, 3.0, 1.0, math.nan]) == 2
    assert cheapest_index([None, None]) is None
    assert batch_grid(16) == [1, 2, 4, 8, 16] and batch_grid(20) == [1, 2, 4, 8, 16]
    assert largest_batch_that_fits(100, 30, 7) == 10
    assert largest_batch_that_fits(10, 30, 7) == 0
    with pytest.raises(ValueError):
        batch_grid(0)
