"""Bernoulli latent-linear model: the MPT identity under the quadrature model, its gradient, the
quadrature rule, and the unbiased estimator used for training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from papers.mpt_lml.bernoulli import BernoulliLatentLinear, gauss_hermite


def model_and_data(latent: int, dim: int = 7, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    model = BernoulliLatentLinear(dim, latent, nodes_per_dim=8, init_scale=1.5, generator=gen)
    with torch.no_grad():
        model.bias.copy_(torch.randn(dim, dtype=torch.float64, generator=gen))
    x = (torch.rand(5, dim, generator=gen) < 0.4).double()
    return model, x


def test_gauss_hermite_integrates_gaussian_moments():
    z, logw = gauss_hermite(2, 10)
    w = logw.exp()
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-12)
    assert float((w * z[:, 0] ** 2).sum()) == pytest.approx(1.0, abs=1e-10)
    assert float((w * z[:, 0] ** 2 * z[:, 1] ** 2).sum()) == pytest.approx(1.0, abs=1e-10)
    assert float((w * z[:, 0] ** 4).sum()) == pytest.approx(3.0, abs=1e-9)


@pytest.mark.parametrize("latent", [1, 2])
def test_exhaustive_mpt_equals_quadrature_lml_and_gradients_agree(latent):
    model, x = model_and_data(latent)
    cumulative = model.exhaustive_scores(x).sum(0)
    lml = model.log_marginal(x)
    assert torch.allclose(cumulative, lml, atol=1e-9, rtol=0)
    grad_mpt = torch.autograd.grad(cumulative.sum(), [model.weight, model.bias])
    grad_lml = torch.autograd.grad(model.log_marginal(x).sum(), [model.weight, model.bias])
    for a, b in zip(grad_mpt, grad_lml):
        assert torch.allclose(a, b, atol=1e-8, rtol=0)


def test_conditional_matches_brute_force_over_nodes():
    """p(x_t | x_rest) from the joint: p(x_t, x_rest) / p(x_rest), by summing over nodes directly."""
    model, x = model_and_data(2, dim=5)
    masked = torch.tensor([[True, False, True, False, False]]).expand(x.shape[0], -1)
    got = model.conditional_log_prob(x, masked).detach()
    with torch.no_grad():
        probs = torch.sigmoid(model.nodes @ model.weight.T + model.bias).numpy()  # (Q, D)
        w = model.logw.exp().numpy()
    for n, row in enumerate(x.numpy()):
        lik = np.where(row == 1, probs, 1 - probs)  # (Q, D)
        rest = lik[:, [1, 3, 4]].prod(1)
        for t in (0, 2):
            want = np.log((w * rest * lik[:, t]).sum() / (w * rest).sum())
            assert float(got[n, t]) == pytest.approx(want, abs=1e-12)


def test_one_draw_mpt_objective_is_unbiased():
    model, x = model_and_data(2)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        draws = torch.stack([model.mpt_objective(x, None, 1, gen).mean() for _ in range(3000)])
        exact = model.log_marginal(x).mean()
    z = float((draws.mean() - exact) / (draws.std() / math.sqrt(len(draws))))
    assert abs(z) < 4, f"z = {z:.2f}"
