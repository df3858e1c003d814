"""The MPT identity and its estimators on PPCA, GP regression and Bayesian linear regression,
against closed forms and independent libraries (scipy, scikit-learn)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from papers.mpt_lml import gaussian as G
from papers.mpt_lml.masks import all_subsets, random_subsets

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ppca_case(off_model: bool, params=None):
    gen = _gen(1)
    torch.manual_seed(1)  # the samplers below draw from the global generator
    dim, latent, n = 8, 2, 6
    weight, log_noise, mean = params or (
        torch.randn(dim, latent, dtype=F64, generator=gen),
        torch.tensor(-1.0, dtype=F64),
        0.3 * torch.randn(dim, dtype=F64, generator=gen),
    )
    g = G.ppca(weight, log_noise.exp(), mean)
    if off_model:  # heavy-tailed, shifted, correlated the wrong way: nothing PPCA would generate
        x = torch.distributions.StudentT(2.0).sample((n, dim)).to(F64) * 3 + 5
    else:
        x = torch.distributions.MultivariateNormal(g.mean.detach(), g.cov.detach()).sample((n,))
    return g, x, (weight, log_noise, mean)


def gp_case(off_model: bool, params=None):
    gen = _gen(2)
    inputs = torch.linspace(0, 5, 9, dtype=F64)[:, None]
    log_ls, log_sv, log_nv = params or (
        torch.tensor(math.log(0.8), dtype=F64),
        torch.tensor(math.log(1.3), dtype=F64),
        torch.tensor(math.log(0.1), dtype=F64),
    )
    g = G.gp_regression(inputs, log_ls.exp(), log_sv.exp(), log_nv.exp())
    if off_model:
        y = 3 * torch.sign(torch.sin(2 * inputs[:, 0])) + torch.randn(9, dtype=F64, generator=gen) ** 3
    else:
        y = g.chol.detach() @ torch.randn(9, dtype=F64, generator=gen)
    return g, y[None, :], (log_ls, log_sv, log_nv)


def blr_case(off_model: bool, params=None):
    gen = _gen(3)
    features = torch.cat([torch.ones(9, 1, dtype=F64), torch.randn(9, 2, dtype=F64, generator=gen)], 1)
    log_prior, log_noise = params or (torch.tensor(0.5, dtype=F64), torch.tensor(-1.5, dtype=F64))
    g = G.bayes_linreg(features, log_prior.exp(), log_noise.exp())
    y = (
        torch.exp(features[:, 1]) * 4
        if off_model
        else g.chol.detach() @ torch.randn(9, dtype=F64, generator=gen)
    )
    return g, y[None, :], (log_prior, log_noise)


CASES = {"ppca": ppca_case, "gp": gp_case, "blr": blr_case}


@pytest.mark.parametrize("off_model", [False, True], ids=["model_data", "off_model"])
@pytest.mark.parametrize("model", sorted(CASES))
def test_exhaustive_cumulative_mpt_equals_exact_lml(model, off_model):
    g, x, _ = CASES[model](off_model)
    cumulative = G.cumulative_score(G.exhaustive_scores(g, x))
    assert torch.allclose(cumulative, g.log_prob(x), atol=1e-9, rtol=0)
    scipy_lml = multivariate_normal(g.mean.numpy(), g.cov.numpy()).logpdf(x.numpy())
    np.testing.assert_allclose(cumulative.numpy(), np.atleast_1d(scipy_lml), atol=1e-9, rtol=0)


@pytest.mark.parametrize("off_model", [False, True], ids=["model_data", "off_model"])
@pytest.mark.parametrize("model", sorted(CASES))
def test_gradient_of_cumulative_mpt_equals_gradient_of_lml(model, off_model):
    _, x, params = CASES[model](off_model)
    leaves = [p.detach().clone().requires_grad_(True) for p in params]
    g, _, _ = CASES[model](off_model, leaves)
    grad_mpt = torch.autograd.grad(G.cumulative_score(G.exhaustive_scores(g, x)).sum(), leaves)
    g, _, _ = CASES[model](off_model, leaves)
    grad_lml = torch.autograd.grad(g.log_prob(x).sum(), leaves)
    for a, b in zip(grad_mpt, grad_lml):
        assert torch.allclose(a, b, atol=1e-8, rtol=0)
        assert b.abs().max() > 1e-3  # a real gradient, not two zeros


def test_conditionals_match_direct_gaussian_conditioning():
    """Both routes (precision for small masks, covariance for large) against numpy's formula."""
    g, x, _ = ppca_case(False)
    cov, mean, xs = g.cov.numpy(), g.mean.numpy(), x.numpy()
    for size in (1, 3, 5, 7, 8):
        masks = random_subsets(g.dim, size, 3, _gen(size))
        logp = G.conditional_log_prob(g, x, masks).numpy()  # (P, m, N)
        for p, mask in enumerate(masks.tolist()):
            rest = [i for i in range(g.dim) if i not in mask]
            for j, t in enumerate(mask):
                if rest:
                    k = np.linalg.solve(cov[np.ix_(rest, rest)], cov[rest, t])
                    mu = mean[t] + (xs[:, rest] - mean[rest]) @ k
                    var = cov[t, t] - cov[t, rest] @ k
                else:
                    mu, var = mean[t], cov[t, t]
                want = -0.5 * (np.log(2 * np.pi * var) + (xs[:, t] - mu) ** 2 / var)
                np.testing.assert_allclose(logp[p, j], want, atol=1e-10)


def test_sklearn_pca_score_equals_cumulative_score_at_ml_parameters():
    from sklearn.decomposition import PCA

    gen = _gen(4)
    x = torch.randn(200, 3, dtype=F64, generator=gen) @ torch.randn(3, 7, dtype=F64, generator=gen)
    x = x + 0.5 * torch.randn(200, 7, dtype=F64, generator=gen)
    pca = PCA(n_components=2, svd_solver="full").fit(x.numpy())
    weight = torch.from_numpy(pca.components_.T * np.sqrt(pca.explained_variance_ - pca.noise_variance_))
    g = G.ppca(weight, float(pca.noise_variance_), torch.from_numpy(pca.mean_))
    ours = float(G.cumulative_score(G.exhaustive_scores(g, x)).mean())
    assert ours == pytest.approx(pca.score(x.numpy()), abs=1e-9)
    # Tipping & Bishop in closed form is sklearn's PPCA with the 1/N (not 1/(N-1)) covariance
    w_ml, s2_ml, mu_ml = G.ppca_ml(x, 2)
    np.testing.assert_allclose(
        (G.ppca(w_ml, s2_ml, mu_ml).cov).numpy(), pca.get_covariance() * (len(x) - 1) / len(x), atol=1e-10
    )


def test_closed_form_ml_is_a_maximum():
    gen = _gen(5)
    _, x = G.sample_ppca(6, 2, 300, 0.3, gen)
    w, s2, mu = G.ppca_ml(x, 2)
    best = float(G.ppca(w, s2, mu).log_prob(x).mean())
    for _ in range(5):
        bumped = G.ppca(w + 0.05 * torch.randn(w.shape, dtype=F64, generator=gen), s2 * 1.05, mu + 0.02)
        assert float(bumped.log_prob(x).mean()) < best


def test_sklearn_gp_log_marginal_likelihood_equals_cumulative_score():
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    for off_model in (False, True):
        g, y, (log_ls, log_sv, log_nv) = gp_case(off_model)
        kernel = ConstantKernel(float(log_sv.exp()), "fixed") * RBF(float(log_ls.exp()), "fixed")
        inputs = np.linspace(0, 5, 9)[:, None]
        gpr = GaussianProcessRegressor(kernel, alpha=float(log_nv.exp()), optimizer=None).fit(
            inputs, y[0].numpy()
        )
        ours = float(G.cumulative_score(G.exhaustive_scores(g, y))[0])
        assert ours == pytest.approx(gpr.log_marginal_likelihood_value_, abs=1e-9)


def test_expected_scores_sum_to_minus_entropy_and_decrease_with_mask_size():
    g, _, _ = ppca_case(False)
    expected = G.expected_scores(g)
    entropy = 0.5 * torch.logdet(2 * math.pi * math.e * g.cov)
    assert float(expected.sum()) == pytest.approx(-float(entropy), abs=1e-9)
    assert bool((expected[1:] <= expected[:-1] + 1e-12).all())


def test_fixed_rate_bias_sign_matches_theory():
    """Low rates over-state the LML, high rates under-state it (in expectation over model data)."""
    g, _, _ = ppca_case(False)
    g = G.Gaussian(g.mean.detach(), g.cov.detach())
    expected = G.expected_scores(g)
    lml = float(expected.sum())
    assert g.dim * float(expected[0]) > lml  # 1 of 8 masked
    assert g.dim * float(expected[-1]) < lml  # all 8 masked
    # and on a finite sample from the model, through the estimator itself
    torch.manual_seed(0)
    x = torch.distributions.MultivariateNormal(g.mean, g.cov).sample((4000,))
    exact = float(g.log_prob(x).mean())
    low = float(G.fixed_rate_objective(g, x, 0.125, masks_per_size=30, generator=_gen(6)).mean())
    high = float(G.fixed_rate_objective(g, x, 0.875, masks_per_size=30, generator=_gen(7)).mean())
    assert low > exact > high


def test_monte_carlo_estimator_is_unbiased_and_its_spread_shrinks_as_one_over_sqrt_p():
    g, x, _ = ppca_case(True)
    g = G.Gaussian(g.mean.detach(), g.cov.detach())
    exact = g.log_prob(x).mean()

    def replicates(masks, count, seed):
        return torch.stack(
            [G.cumulative_score(G.mc_scores(g, x, masks, _gen(seed + r))).mean() for r in range(count)]
        )

    one = replicates(1, 400, 1000)
    z = float((one.mean() - exact) / (one.std() / math.sqrt(len(one))))
    assert abs(z) < 4, f"z = {z:.2f}"
    sixteen = replicates(16, 100, 5000)
    ratio = float(one.std() / sixteen.std())
    assert 3.0 < ratio < 5.3, f"spread ratio P=1/P=16 is {ratio:.2f}, expected about sqrt(16) = 4"


def test_single_draw_estimator_is_unbiased():
    g, x, _ = ppca_case(False)
    g = G.Gaussian(g.mean.detach(), g.cov.detach())
    gen = _gen(11)
    draws = torch.stack([G.single_draw_estimate(g, x, gen).mean() for _ in range(800)])
    z = float((draws.mean() - g.log_prob(x).mean()) / (draws.std() / math.sqrt(len(draws))))
    assert abs(z) < 4, f"z = {z:.2f}"


def test_masks_are_exact_size_subsets():
    assert all_subsets(5, 2).shape == (10, 2)
    sets = random_subsets(9, 4, 500, _gen(0))
    assert sets.shape == (500, 4)
    assert bool((sets.sort(-1).values[:, 1:] > sets.sort(-1).values[:, :-1]).all())  # distinct indices
    counts = torch.bincount(sets.flatten(), minlength=9).double()
    assert float(counts.std() / counts.mean()) < 0.1  # every dimension about equally often masked


def test_data_averaged_scores_from_moments_equal_the_per_datapoint_mean():
    g, x, params = ppca_case(True)
    moments = G.Moments.of(x)
    for size in range(1, g.dim + 1):
        masks = random_subsets(g.dim, size, 4, _gen(size))
        per_point = G.mask_scores(g, x, masks)
        assert torch.allclose(per_point, G.conditional_log_prob(g, x, masks).mean(1), atol=1e-12)
        assert torch.allclose(G.mask_scores(g, moments, masks), per_point.mean(1), atol=1e-12)
    assert float(g.mean_log_prob(moments)) == pytest.approx(float(g.log_prob(x).mean()), abs=1e-12)
    leaves = [p.detach().clone().requires_grad_(True) for p in params]
    g, _, _ = ppca_case(True, leaves)
    grad_mpt = torch.autograd.grad(G.cumulative_score(G.exhaustive_scores(g, moments)), leaves)
    g, _, _ = ppca_case(True, leaves)
    grad_lml = torch.autograd.grad(g.log_prob(x).mean(), leaves)
    for a, b in zip(grad_mpt, grad_lml):
        assert torch.allclose(a, b, atol=1e-8, rtol=0)


def test_orderings_estimator_equals_a_loop_over_its_nested_masks_and_is_unbiased():
    g, x, _ = ppca_case(True)
    g = G.Gaussian(g.mean.detach(), g.cov.detach())
    orders = torch.rand(5, g.dim, generator=_gen(8)).argsort(-1)
    loop = torch.stack(
        [
            torch.stack(
                [G.mask_scores(g, x, G.nested_masks(orders, m)[p : p + 1])[0] for p in range(5)]
            ).mean(0)
            for m in range(1, g.dim + 1)
        ]
    )
    assert torch.allclose(G.permutation_scores(g, x, 5, orders=orders), loop, atol=1e-11)
    moments = G.Moments.of(x)
    assert torch.allclose(G.permutation_scores(g, moments, 5, orders=orders), loop.mean(1), atol=1e-11)
    draws = torch.stack([G.permutation_scores(g, moments, 1, _gen(100 + r)).sum() for r in range(1000)])
    z = float((draws.mean() - g.mean_log_prob(moments)) / (draws.std() / math.sqrt(len(draws))))
    assert abs(z) < 4, f"z = {z:.2f}"
