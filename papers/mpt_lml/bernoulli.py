"""Bernoulli latent-linear model with its LML by Gauss-Hermite quadrature, and MPT on it.

p(x | z) = prod_d Bern(x_d | sigmoid(w_d . z + b_d)), z ~ N(0, I_k) with k = 1 or 2. The integral over
z is replaced by a tensor-product Gauss-Hermite rule with Q nodes, so the model we score *is* the
Q-component mixture sum_q w_q p(x | z_q). That makes everything exact for the model as computed:
log p(x) is a log-sum-exp over nodes, and the MPT conditional of a masked pixel given the unmasked
rest is the posterior over nodes given the unmasked pixels, pushed through the pixel's Bernoulli:

    p(x_t | x_{-M}) = sum_q pi_q(x_{-M}) sigmoid(+-a_qt),   pi_q ∝ w_q p(x_{-M} | z_q).

So the MPT identity holds to rounding here too. How well the rule resolves the continuous integral
is a separate question; `log_marginal` at more nodes measures it.

Unlike the authors' exp_5_binary.py, which scores log p(x_M) (the masked pixels' joint marginal,
ignoring the unmasked ones), the conditionals here condition on the unmasked rest, as MPT does.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import nn
from torch.nn.functional import logsigmoid

from papers.mpt_lml.masks import all_subsets, random_masks, rate_to_size


def gauss_hermite(latent: int, nodes_per_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes (Q, k) and log weights (Q,) with sum_q w_q f(z_q) ≈ E_{z ~ N(0, I_k)} f(z)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(nodes_per_dim)
    weights = weights / math.sqrt(2 * math.pi)
    grid = list(itertools.product(range(nodes_per_dim), repeat=latent))
    z = torch.tensor([[nodes[i] for i in idx] for idx in grid], dtype=torch.float64)
    logw = torch.tensor([sum(math.log(weights[i]) for i in idx) for idx in grid], dtype=torch.float64)
    return z, logw


class BernoulliLatentLinear(nn.Module):
    def __init__(
        self,
        dim: int,
        latent: int = 2,
        nodes_per_dim: int = 20,
        init_scale: float = 0.1,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.weight = nn.Parameter(
            init_scale * torch.randn(dim, latent, dtype=torch.float64, generator=generator)
        )
        self.bias = nn.Parameter(torch.zeros(dim, dtype=torch.float64))
        nodes, logw = gauss_hermite(latent, nodes_per_dim)
        self.register_buffer("nodes", nodes)
        self.register_buffer("logw", logw)

    @property
    def dim(self) -> int:
        return self.weight.shape[0]

    def _activations(self) -> torch.Tensor:
        return self.nodes @ self.weight.T + self.bias  # (Q, D)

    def _node_log_lik(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x_kept | z_q) for each row: (R, Q); `keep` (R, D) selects the pixels counted."""
        act = self._activations()
        ones, zeros = x, 1 - x
        if keep is not None:
            ones, zeros = ones * keep, zeros * keep
        return ones @ logsigmoid(act).T + zeros @ logsigmoid(-act).T

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) of each row of binary x (N, D) under the quadrature mixture: (N,)."""
        return torch.logsumexp(self.logw + self._node_log_lik(x), dim=-1)

    def conditional_log_prob(self, x: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """log p(x_t | x_{-M}) for every pixel t of every row, row r with its own mask: (R, D)."""
        keep = (~masked).to(x.dtype)
        posterior = torch.softmax(self.logw + self._node_log_lik(x, keep), dim=-1)  # (R, Q)
        act = self._activations()
        p_one = posterior @ torch.sigmoid(act)
        p_zero = posterior @ torch.sigmoid(-act)  # not 1 - p_one: no cancellation near 1
        return x * p_one.log() + (1 - x) * p_zero.log()

    def mask_scores(self, x: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """(1/m) sum_{t in M} log p(x_t | x_{-M}) per row (row r of x with mask r): (R,)."""
        logp = self.conditional_log_prob(x, masked)
        return torch.where(masked, logp, 0).sum(-1) / masked.sum(-1)

    def exhaustive_scores(self, x: torch.Tensor) -> torch.Tensor:
        """S(x; m) for m = 1..D over every mask: (D, N). Small D only."""
        rows = []
        for size in range(1, self.dim + 1):
            sets = all_subsets(self.dim, size)
            masks = torch.zeros(sets.shape[0], self.dim, dtype=torch.bool).scatter_(1, sets, True)
            n, count = x.shape[0], masks.shape[0]
            scores = self.mask_scores(x.repeat_interleave(count, 0), masks.repeat(n, 1))
            rows.append(scores.reshape(n, count).mean(-1))
        return torch.stack(rows)

    def mpt_objective(
        self, x: torch.Tensor, rate: float | None, draws: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Per-datapoint MPT estimate on the LML's scale, D * (1/m) sum_{t in M} log p: (N,).

        rate=None: the unbiased one-draw estimator, m ~ U{1..D} drawn afresh per datapoint and draw;
        rate=r: the fixed-rate objective, m = round(r D). Each datapoint gets its own masks, which
        costs one (Q, D) pass per row instead of one per (row, mask) pair.
        """
        n, dim = x.shape
        rows = x.repeat(draws, 1)
        if rate is None:
            sizes = torch.randint(1, dim + 1, (rows.shape[0],), generator=generator)
        else:
            sizes = torch.full((rows.shape[0],), rate_to_size(dim, rate))
        masks = random_masks(torch.ones_like(rows, dtype=torch.bool), sizes, generator)
        return dim * self.mask_scores(rows, masks).reshape(draws, n).mean(0)
