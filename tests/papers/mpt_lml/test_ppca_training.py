"""PPCA trained by cumulative MPT with one mask per size reaches the Tipping & Bishop optimum."""

from __future__ import annotations

import pytest
import torch

from common.config import compose
from papers.mpt_lml import config  # noqa: F401 - registers the schemas
from papers.mpt_lml.gaussian import sample_ppca
from papers.mpt_lml.ppca import optimum_lml, train_ppca


def gap_after_training(cfg, seed: int) -> tuple[float, float]:
    _, x = sample_ppca(
        cfg.dim, cfg.latent, cfg.n_data, cfg.noise_std, torch.Generator().manual_seed(cfg.seed)
    )
    hist = train_ppca(x, cfg.latent, "cumulative", cfg.steps, cfg.lr, cfg.masks_per_size, seed, cfg.steps)
    return optimum_lml(x, cfg.latent) - hist["lml"][-1], hist["lml"][-1] - hist["lml"][0]


def test_cumulative_mpt_one_mask_per_size_reaches_the_optimum():
    """The default config (D = 10, N = 2000, K = 2, 1000 steps), its first seed."""
    cfg = compose("mpt_lml/ppca_training")
    assert cfg.masks_per_size == 1
    gap, gain = gap_after_training(cfg, seed=cfg.seeds[0])
    assert 0 <= gap < 0.02  # nats per datapoint; the optimum is the maximum, so never negative
    assert gain > 5.0  # it started far away


@pytest.mark.slow
def test_cumulative_mpt_one_mask_per_size_reaches_the_optimum_every_seed():
    cfg = compose("mpt_lml/ppca_training")
    for seed in cfg.seeds[1:]:
        gap, _ = gap_after_training(cfg, seed)
        assert 0 <= gap < 0.02
