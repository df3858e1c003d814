"""Exact log marginal likelihood (LML) and masked pre-training (MPT) scores of Gaussian models.

PPCA, GP regression and Bayesian linear regression all make the D observed values jointly Gaussian,
x ~ N(mu, C); they differ only in how C is built. So one scorer serves all three, and the MPT identity

    log p(x) = sum_{m=1..D} S(x; m),   S(x; m) = mean_{|M|=m} (1/m) sum_{t in M} log p(x_t | x_{-M})

(Fong & Holmes 2020: average the chain rule over all orderings; position i of a random ordering
conditions on a uniform subset of size i-1, i.e. masks the other m = D-i+1) can be checked exactly
against the closed-form LML. Each masked x_t is scored alone given the unmasked rest x_{-M}, with the
other masked values marginalised; for a Gaussian that is one conditioning per mask:

- m <= D/2: the precision route. With Lambda = C^-1 and g = Lambda (x - mu), the conditional of x_M
  given x_{-M} has precision Lambda_MM, so its per-token variances are diag(Lambda_MM^-1) and
  x_M - E[x_M | x_{-M}] = Lambda_MM^-1 g_M: one m x m Cholesky per mask.
- m > D/2: the covariance route, one (D-m) x (D-m) Cholesky of C_{-M,-M} per mask.

Masks of one size are batched into one batched Cholesky, in float64, and everything is differentiable
with torch.autograd, so the same code gives the training objectives. Scores averaged over a data set
need only its first two moments (`Moments`), which makes their cost independent of N; and one
random ordering of the dims yields a mask of every size from a single factorisation
(`permutation_scores`), the fast Monte Carlo estimator the experiments train with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

from papers.mpt_lml.masks import all_subsets, complement, random_subsets, rate_to_size

LOG_2PI = math.log(2 * math.pi)


def check_data(x: torch.Tensor, dim: int | None = None) -> None:
    """Data (N, D) with N, D >= 1, finite, and D matching the model's: ValueError otherwise."""
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"data must be (N, D) with N, D >= 1, got shape {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"data have {x.shape[1]} dims, the model {dim}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("data contain NaN or infinite values")


def _check_input(g: Gaussian, x: torch.Tensor | Moments, count: int, what: str) -> None:
    if int(count) < 1:
        raise ValueError(f"{what} must be >= 1, got {count}")
    if isinstance(x, Moments):
        if x.mean.shape[0] != g.dim:
            raise ValueError(f"data have {x.mean.shape[0]} dims, the model {g.dim}")
    else:
        check_data(x, g.dim)


@dataclass
class Moments:
    """A data set's mean and 1/N scatter: all that data-averaged Gaussian MPT scores depend on.

    Averaged over datapoints, log p(x_t | x_{-M}) needs only E_n[(x_t - E[x_t | x_{-M}])^2], a
    quadratic form in the data's second moment about the model mean. Scoring from moments makes a
    mask's cost independent of N, which is what training (a mean over data) needs.
    """

    mean: torch.Tensor  # (D,)
    scatter: torch.Tensor  # (D, D), (1/N) sum (x - mean)(x - mean)^T
    n: int

    @classmethod
    def of(cls, x: torch.Tensor) -> Moments:
        check_data(x)
        mean = x.mean(0)
        centred = x - mean
        return cls(mean, centred.T @ centred / x.shape[0], x.shape[0])

    def about(self, point: torch.Tensor) -> torch.Tensor:
        """(1/N) sum (x - point)(x - point)^T."""
        shift = self.mean - point
        return self.scatter + torch.outer(shift, shift)

    @cached_property
    def scatter_factor(self) -> torch.Tensor:
        """F (D, D) with F F^T = scatter (from its eigendecomposition, so a singular scatter is fine)."""
        evals, evecs = torch.linalg.eigh(self.scatter)
        return evecs * evals.clamp_min(0).sqrt()

    def factor_about(self, point: torch.Tensor) -> torch.Tensor:
        """G (D, D + 1) with G G^T = `about(point)`: the scatter's factor and the mean's shift."""
        return torch.cat([self.scatter_factor, (self.mean - point)[:, None]], dim=1)


@dataclass
class Gaussian:
    """x ~ N(mean, cov) over the D observed dimensions; float64 throughout."""

    mean: torch.Tensor  # (D,)
    cov: torch.Tensor  # (D, D), symmetric positive definite

    @property
    def dim(self) -> int:
        return self.cov.shape[-1]

    @cached_property
    def chol(self) -> torch.Tensor:
        return torch.linalg.cholesky(self.cov)

    @cached_property
    def precision(self) -> torch.Tensor:
        return torch.cholesky_inverse(self.chol)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log density of each row of x (N, D) -> (N,): the LML of each datapoint."""
        z = torch.linalg.solve_triangular(self.chol, (x - self.mean).T, upper=False)
        half_logdet = self.chol.diagonal().log().sum()
        return -0.5 * (z**2).sum(0) - half_logdet - 0.5 * self.dim * LOG_2PI

    def second_moments(self, moments: Moments) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, Lambda S Lambda) with S the data's second moment about this model's mean; kept for
        the last `moments` seen, so scoring many masks one at a time does not redo D^3 work."""
        cached = self.__dict__.get("_second_moments")
        if cached is None or cached[0] is not moments:
            second = moments.about(self.mean)
            cached = (moments, second, self.precision @ second @ self.precision)
            self.__dict__["_second_moments"] = cached
        return cached[1], cached[2]

    def mean_log_prob(self, moments: Moments) -> torch.Tensor:
        """The LML averaged over a data set, from its moments: -(D log 2 pi + log|C| + tr(C^-1 S)) / 2."""
        trace = (self.precision * moments.about(self.mean)).sum()
        return -0.5 * (self.dim * LOG_2PI + 2 * self.chol.diagonal().log().sum() + trace)


# ---- the three models ----------------------------------------------------------------------------
def ppca(
    weights: torch.Tensor, noise_var: torch.Tensor | float, mean: torch.Tensor | None = None
) -> Gaussian:
    """PPCA x = W z + mu + eps, z ~ N(0, I_k), eps ~ N(0, s2 I): marginally N(mu, W W^T + s2 I)."""
    dim = weights.shape[0]
    eye = torch.eye(dim, dtype=weights.dtype)
    mean = torch.zeros(dim, dtype=weights.dtype) if mean is None else mean
    return Gaussian(mean, weights @ weights.T + noise_var * eye)


def rbf_kernel(a: torch.Tensor, b: torch.Tensor, lengthscale, signal_var) -> torch.Tensor:
    """s2 exp(-|a-b|^2 / (2 l^2)) for inputs a (n, d), b (n', d); the kernel sklearn calls C * RBF."""
    sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return signal_var * torch.exp(-0.5 * sq / lengthscale**2)


def gp_regression(inputs: torch.Tensor, lengthscale, signal_var, noise_var) -> Gaussian:
    """GP regression marginal over the D training targets: y ~ N(0, K(X, X) + s2_n I)."""
    kern = rbf_kernel(inputs, inputs, lengthscale, signal_var)
    eye = torch.eye(inputs.shape[0], dtype=kern.dtype)
    return Gaussian(torch.zeros(inputs.shape[0], dtype=kern.dtype), kern + noise_var * eye)


def bayes_linreg(features: torch.Tensor, prior_var, noise_var) -> Gaussian:
    """y = Phi w + eps with w ~ N(0, a I), eps ~ N(0, s2 I): y ~ N(0, a Phi Phi^T + s2 I)."""
    eye = torch.eye(features.shape[0], dtype=features.dtype)
    return Gaussian(
        torch.zeros(features.shape[0], dtype=features.dtype),
        prior_var * features @ features.T + noise_var * eye,
    )


def ppca_ml(x: torch.Tensor, latent: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tipping & Bishop (1999) closed-form maximum-likelihood PPCA: (W, s2, mu).

    With S the 1/N sample covariance and eigenpairs (l_i, u_i) in decreasing order,
    s2 = mean of the D-k smallest l_i and W = U_k (L_k - s2 I)^(1/2) (up to a rotation, which the
    likelihood does not see); mu is the sample mean.
    """
    mean = x.mean(0)
    centred = x - mean
    cov = centred.T @ centred / x.shape[0]
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(0), evecs.flip(1)
    noise_var = evals[latent:].mean()
    weights = evecs[:, :latent] * (evals[:latent] - noise_var).clamp_min(0).sqrt()
    return weights, noise_var, mean


# ---- conditionals and MPT scores -----------------------------------------------------------------
def conditional_moments(
    g: Gaussian, x: torch.Tensor, masked: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For masks `masked` (P, m) of one size: variances (P, m) and residuals (P, m, N) of each masked
    x_t given the unmasked rest of its row (the other masked values marginalised)."""
    dim, (count, size) = g.dim, masked.shape
    centred = x - g.mean
    if size == dim:  # nothing left to condition on: the marginals
        return g.cov.diagonal()[masked], centred[:, masked].permute(1, 2, 0)
    if size <= dim - size:
        block = g.precision[masked[:, :, None], masked[:, None, :]]
        chol = torch.linalg.cholesky(block)
        eye = torch.eye(size, dtype=block.dtype).expand(count, size, size)
        inv_chol = torch.linalg.solve_triangular(chol, eye, upper=False)
        variances = (inv_chol**2).sum(-2)
        grad = (centred @ g.precision)[:, masked].permute(1, 2, 0)
        return variances, torch.cholesky_solve(grad, chol)
    rest = complement(masked, dim)
    chol = torch.linalg.cholesky(g.cov[rest[:, :, None], rest[:, None, :]])
    cross = torch.linalg.solve_triangular(chol, g.cov[rest[:, :, None], masked[:, None, :]], upper=False)
    variances = g.cov.diagonal()[masked] - (cross**2).sum(-2)
    white = torch.linalg.solve_triangular(chol, centred[:, rest].permute(1, 2, 0), upper=False)
    residuals = centred[:, masked].permute(1, 2, 0) - cross.transpose(-1, -2) @ white
    return variances, residuals


def conditional_log_prob(g: Gaussian, x: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """log p(x_t | x_{-M}) for every t in every mask: (P, m, N)."""
    variances, residuals = conditional_moments(g, x, masked)
    variances = variances[..., None]
    return -0.5 * (LOG_2PI + variances.log() + residuals**2 / variances)


def mask_scores(g: Gaussian, x: torch.Tensor | Moments, masked: torch.Tensor) -> torch.Tensor:
    """(1/m) sum_{t in M} log p(x_t | x_{-M}) for each mask: (P, N) per datapoint for data x (N, D),
    (P,) averaged over the data for `Moments`.

    The same conditioning as `conditional_log_prob`, fused: each residual is divided by its
    conditional standard deviation inside one batched matmul, so (P, m, N) is built once.
    """
    if isinstance(x, Moments):
        return _mask_scores_mean(g, *g.second_moments(x), masked)
    dim, size = g.dim, masked.shape[1]
    centred_t = (x - g.mean).T  # (D, N)
    if size == dim:
        variances = g.cov.diagonal()[masked]
        white = centred_t[masked] * variances.rsqrt()[..., None]
    elif size <= dim - size:
        (block,) = _blocks(g.precision, masked, masked)
        inv = torch.cholesky_inverse(torch.linalg.cholesky(block))
        variances = inv.diagonal(dim1=-2, dim2=-1)
        white = (inv * variances.rsqrt()[..., None]) @ (g.precision @ centred_t)[masked]
    else:
        rest = complement(masked, dim)
        cov_rr, cov_rm = _blocks(g.cov, rest, rest, masked)
        chol = torch.linalg.cholesky(cov_rr)
        cross = torch.linalg.solve_triangular(chol, cov_rm, upper=False)
        variances = g.cov.diagonal()[masked] - cross.square().sum(-2)
        scale = variances.rsqrt()[..., None]
        rest_white = torch.linalg.solve_triangular(chol, centred_t[rest], upper=False)
        white = centred_t[masked] * scale - (cross.transpose(-1, -2) * scale) @ rest_white
    return -0.5 * (LOG_2PI + variances.log().mean(-1)[:, None] + white.square().mean(1))


def _blocks(mat: torch.Tensor, rows: torch.Tensor, *cols: torch.Tensor) -> list[torch.Tensor]:
    """mat[rows_p][:, cols_p] for every mask p, one (P, r, c) block per `cols`: rows are gathered
    once by index_select, columns by gather (much faster than 2-D advanced indexing)."""
    count, size = rows.shape
    picked = mat.index_select(0, rows.reshape(-1)).reshape(count, size, mat.shape[1])
    return [picked.gather(2, c[:, None, :].expand(count, size, c.shape[1])) for c in cols]


def _mask_scores_mean(
    g: Gaussian, second: torch.Tensor, outer: torch.Tensor, masked: torch.Tensor
) -> torch.Tensor:
    """Data-averaged mask scores from the second moment S about the model mean and Lambda S Lambda."""
    dim, size = g.dim, masked.shape[1]
    if size == dim:
        variances, quad = g.cov.diagonal()[masked], second.diagonal()[masked]
    elif size <= dim - size:  # residual = A^-1 (Lambda e)_M with A = Lambda_MM
        (block,) = _blocks(g.precision, masked, masked)
        inv = torch.cholesky_inverse(torch.linalg.cholesky(block))
        variances = inv.diagonal(dim1=-2, dim2=-1)
        (outer,) = _blocks(outer, masked, masked)
        quad = ((inv @ outer) * inv).sum(-1)
    else:  # residual = e_M - K e_R with K = C_MR C_RR^-1
        rest = complement(masked, dim)
        cov_rr, cov_rm = _blocks(g.cov, rest, rest, masked)
        sec_rr, sec_rm = _blocks(second, rest, rest, masked)
        gain = torch.cholesky_solve(cov_rm, torch.linalg.cholesky(cov_rr))  # K^T: (P, k, m)
        variances = g.cov.diagonal()[masked] - (gain * cov_rm).sum(-2)
        quad = second.diagonal()[masked] - 2 * (gain * sec_rm).sum(-2) + ((sec_rr @ gain) * gain).sum(-2)
    return -0.5 * (LOG_2PI + (variances.log() + quad / variances).mean(-1))


def exhaustive_scores(g: Gaussian, x: torch.Tensor | Moments, chunk: int = 4096) -> torch.Tensor:
    """S(x; m) for m = 1..D, averaged over all C(D, m) masks: (D, N), or (D,) for `Moments`.
    Small D only (2^D masks)."""
    _check_input(g, x, 1, "")
    rows = []
    for size in range(1, g.dim + 1):
        masks = all_subsets(g.dim, size)
        total = sum(mask_scores(g, x, part).sum(0) for part in masks.split(chunk))
        rows.append(total / masks.shape[0])
    return torch.stack(rows)


def mc_scores(
    g: Gaussian,
    x: torch.Tensor | Moments,
    masks_per_size: int,
    generator: torch.Generator | None = None,
    sizes=None,
) -> torch.Tensor:
    """Monte Carlo S(x; m) with `masks_per_size` uniform masks per size (shared by all rows of x):
    (len(sizes), N), or (len(sizes),) for `Moments`; sizes default to 1..D. Unbiased for every m,
    so its sum is an unbiased estimate of the LML."""
    _check_input(g, x, masks_per_size, "masks_per_size")
    sizes = range(1, g.dim + 1) if sizes is None else sizes
    if len(sizes) == 0 or any(not 1 <= int(m) <= g.dim for m in sizes):
        raise ValueError(f"mask sizes must lie in 1..{g.dim}, got {list(sizes)[:5]}")
    rows = [
        mask_scores(g, x, random_subsets(g.dim, int(m), masks_per_size, generator)).mean(0) for m in sizes
    ]
    return torch.stack(rows)


def permutation_scores(
    g: Gaussian,
    x: torch.Tensor | Moments,
    permutations: int,
    generator: torch.Generator | None = None,
    orders: torch.Tensor | None = None,
) -> torch.Tensor:
    """MC S(x; m) for every m = 1..D from random orderings, each giving one mask of every size:
    (D, N), or (D,) for `Moments`. Row m-1 is S(x; m); unbiased, like `mc_scores`.

    Masking the last m dims of a uniform random ordering masks a uniform m-subset, so one ordering
    serves every size at once (the masks are nested across sizes, independent across orderings).
    With L the Cholesky factor of C in that order and w = L^-1 (x - mu), the dim at position t given
    the first k has residual sum_{j=k..t} L_tj w_j and variance sum_{j=k..t} L_tj^2. Averaged over
    the data, the squared residual needs only Omega = E[w w^T] = L^-1 S L^-T, so suffix sums of one
    factorisation give every (size, token) term: a batch of orderings costs a few batched D x D
    operations instead of one factorisation per mask. Per datapoint that trick would need a
    (P, D, D, N) tensor, so those scores are conditioned size by size on the same nested masks.
    """
    dim = g.dim
    _check_input(g, x, permutations if orders is None else len(orders), "permutations")
    if orders is None:
        orders = torch.rand(permutations, dim, generator=generator, dtype=torch.float64).argsort(-1)
    if not isinstance(x, Moments):
        return torch.stack([mask_scores(g, x, nested_masks(orders, m)).mean(0) for m in range(1, dim + 1)])
    factor = x.factor_about(g.mean)
    invalid = torch.ones(dim, dim, dtype=torch.bool).triu(1)
    totals = sum(_ordering_totals(g.cov, factor, part, invalid) for part in orders.split(ORDERING_CHUNK))
    sizes = dim - torch.arange(dim, dtype=torch.float64)  # m = D - k
    return (-0.5 * (LOG_2PI + totals / (len(orders) * sizes))).flip(0)


ORDERING_CHUNK = 32  # orderings per pass: (32, D, D) float64 arrays stay in cache for D <= 64 or so


def _ordering_totals(
    cov: torch.Tensor, factor: torch.Tensor, orders: torch.Tensor, invalid: torch.Tensor
) -> torch.Tensor:
    """sum over these orderings and over t >= k of log v_tk + E[r_tk^2] / v_tk: (D,), index k."""
    (ordered,) = _blocks(cov, orders, orders)
    chol = torch.linalg.cholesky(ordered)  # (P, D, D): rows t, columns j
    white = torch.linalg.solve_triangular(chol, factor[orders], upper=False)
    omega = white @ white.transpose(-1, -2)  # L^-1 S L^-T: the whitened data's second moment
    # [t, k] holds the dim at position t given the first k. The arithmetic is a few passes over
    # (P, D, D) arrays, so without autograd each step works in place (and callers pass cache-sized
    # chunks); with autograd (training) the same steps run out of place.
    upper = chol @ omega.tril(-1)  # [t, j] = sum_{i > j} L_ti omega_ij (omega is symmetric)
    diag = omega.diagonal(dim1=-2, dim2=-1)[:, None, :]
    if torch.is_grad_enabled() and (cov.requires_grad or factor.requires_grad):
        lsq = chol.square()
        quad = _suffix_sums(torch.addcmul(lsq * diag, chol, upper, value=2))
        variances = _suffix_sums(lsq).masked_fill(invalid, 1.0)
        return (variances.log() + quad / variances).sum((0, 1))
    half = upper.mul_(chol)  # half of E[residual^2], before the suffix sums: the factor 2 comes last
    lsq = chol.mul_(chol)  # L is not needed any more: its squares, in its place
    half = _suffix_sums_(half.addcmul_(lsq, diag, value=0.5))
    # for k > t the suffix sums add exact zeros (L is lower triangular); a variance of 1 and a zero
    # quadratic term there make those entries add exactly nothing
    variances = _suffix_sums_(lsq).masked_fill_(invalid, 1.0)
    return 2 * half.div_(variances).sum((0, 1)) + variances.log_().sum((0, 1))  # orderings and t >= k


def _suffix_sums_(values: torch.Tensor) -> torch.Tensor:
    """`_suffix_sums` along the last dim, written into `values`."""
    prefix = values.cumsum(-1)
    return values.sub_(prefix).add_(prefix[..., -1:])


def _suffix_sums(values: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """sum_{j >= k} values_j along `dim`, as total - (inclusive prefix sum) + own term: no flips."""
    prefix = values.cumsum(dim)
    return prefix.narrow(dim, values.shape[dim] - 1, 1) - prefix + values


def nested_masks(orders: torch.Tensor, size: int) -> torch.Tensor:
    """The size-`size` masks `permutation_scores` uses for these orderings: their last `size` dims."""
    return orders[:, orders.shape[1] - size :]


def cumulative_score(scores: torch.Tensor) -> torch.Tensor:
    """sum_m S(x; m) over the sizes 1..D: the LML (exact for exhaustive scores, unbiased for MC)."""
    if scores.shape[0] < 1 or not bool(torch.isfinite(scores).all()):
        raise ValueError("cumulative_score needs finite scores for at least one size")
    return scores.sum(0)


def fixed_rate_objective(
    g: Gaussian,
    x: torch.Tensor | Moments,
    rate: float,
    masks_per_size: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """D * S(x; m0) with m0 = round(rate * D): BERT-style MPT at one rate, on the LML's scale. (N,)

    It is a biased estimate of the LML, with a sign theory fixes in expectation over data from the
    model: E_x S(x; m) = -mean_{t, R} H(x_t | x_R) with R the D-m unmasked dims, and conditioning on
    more dims never raises entropy, so E_x S(x; m) is non-increasing in m. Hence
    D * E S(m0) >= sum_m E S(m) = E log p(x) for small m0 (a low rate over-states the LML: each token
    sees almost everything) and <= for m0 near D (a high rate under-states it: tokens are scored
    nearly from the marginals). For one datapoint, or data the model did not generate, S(x; m) need
    not be monotone and the sign is not guaranteed.
    """
    size = rate_to_size(g.dim, rate)
    return g.dim * mc_scores(g, x, masks_per_size, generator, sizes=[size])[0]


def expected_scores(
    g: Gaussian, sizes=None, masks: int | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """E_{x ~ g} S(x; m) in closed form, -(1/2) mean over masks and t of log(2 pi e v_t): (len(sizes),).

    Exhaustive over masks when `masks` is None (small D), else Monte Carlo with `masks` per size.
    """
    sizes = range(1, g.dim + 1) if sizes is None else sizes
    probe = torch.zeros(1, g.dim, dtype=g.cov.dtype)  # residuals unused: only variances matter
    rows = []
    for m in sizes:
        sets = all_subsets(g.dim, m) if masks is None else random_subsets(g.dim, m, masks, generator)
        variances, _ = conditional_moments(g, probe + g.mean, sets)
        rows.append(-0.5 * (LOG_2PI + 1 + variances.log()).mean())
    return torch.stack(rows)


def single_draw_estimate(
    g: Gaussian, x: torch.Tensor | Moments, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One-draw unbiased LML estimate: m ~ U{1..D}, one mask M of size m, D * (1/m) sum log p. (N,)

    E_m E_M [D S_M] = D * (1/D) sum_m S(m) = log p(x): the cheapest unbiased MPT objective.
    """
    size = int(torch.randint(1, g.dim + 1, (1,), generator=generator))
    return g.dim * mc_scores(g, x, 1, generator, sizes=[size])[0]


def sample_ppca(
    dim: int, latent: int, n: int, noise_std: float, generator: torch.Generator | None = None
) -> tuple[Gaussian, torch.Tensor]:
    """A random PPCA (W ~ N(0, 1), zero mean) and n datapoints drawn from it: (model, x (n, dim)).

    The noise is drawn per dimension, as the model says; the authors' scripts add one noise value
    per datapoint to every dimension, which is not a draw from their PPCA.
    """
    if dim < 1 or latent < 1 or n < 1 or not (math.isfinite(noise_std) and noise_std > 0):
        raise ValueError(
            f"need dim, latent, n >= 1 and a finite noise_std > 0; got {dim}, {latent}, {n}, {noise_std}"
        )
    opts = {"dtype": torch.float64, "generator": generator}
    weights = torch.randn(dim, latent, **opts)
    x = torch.randn(n, latent, **opts) @ weights.T + noise_std * torch.randn(n, dim, **opts)
    return ppca(weights, noise_std**2), x
