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

    @torch.no_grad()
    def ordering_scores(self, x: torch.Tensor, orderings: int, generator: torch.Generator | None = None):
        """Cumulative MPT along random orderings, per image: (sizes (P, D, N), chain (P, N)).

        Masking the last m pixels of an ordering conditions on its first D - m: the posterior over
        nodes given those is a prefix sum of per-pixel node log-likelihoods, so one ordering gives
        S_p(x; m) for every m in O(D^2 Q) (no mask is conditioned from scratch). sizes.sum(1) is an
        unbiased estimate of log p(x); chain (the first masked pixel of each size) is the chain rule
        along the ordering, which for this model (one joint distribution) is log p(x) exactly.
        """
        if orderings < 1:
            raise ValueError(f"orderings must be >= 1, got {orderings}")
        n, dim = x.shape
        act = self._activations()
        log_on, log_off = logsigmoid(act), logsigmoid(-act)  # (Q, D)
        sizes = torch.empty(orderings, dim, n, dtype=torch.float64)
        chain = torch.empty(orderings, n, dtype=torch.float64)
        for i in range(n):
            lik = torch.where(x[i].bool(), log_on, log_off)  # (Q, D): log p(x_d | z_q)
            for p in range(orderings):
                order = torch.randperm(dim, generator=generator)
                ordered = lik[:, order]
                zero = torch.zeros(lik.shape[0], 1, dtype=lik.dtype)
                prefix = torch.cat([zero, ordered.cumsum(1)[:, :-1]], 1)
                post = torch.softmax(self.logw[:, None] + prefix, dim=0)  # (Q, K): given the first k pixels
                logp = torch.log(post.T @ ordered.exp())  # (K, T): log p(x_(t) | x_(<k)) for every k, t
                k = torch.arange(dim)
                masked = k[None, :] >= k[:, None]  # position t masked when k pixels are known: t >= k
                total = torch.where(masked, logp, 0.0).sum(1)  # over the D - k masked pixels
                sizes[p, :, i] = (total / (dim - k)).flip(0)  # row m - 1 holds size m = D - k
                chain[p, i] = logp.diagonal().sum()
        return sizes, chain


def train_bernoulli(
    train: torch.Tensor,
    test: torch.Tensor,
    objective: str,
    rate: float | None,
    latent: int,
    nodes: int,
    steps: int,
    batch_size: int,
    lr: float,
    eval_every: int,
    seed: int,
    log_fn=None,
) -> tuple[BernoulliLatentLinear, dict]:
    """Adam on minibatches by `objective` ('lml', or MPT: rate None = the unbiased cumulative
    estimator, a rate = fixed-rate MPT); the exact (quadrature) train and test LML every `eval_every`
    steps, also passed to `log_fn(step, values)` as training goes."""
    if steps < 1 or batch_size < 1 or eval_every < 1 or not lr > 0:
        raise ValueError(
            f"need steps, batch_size, eval_every >= 1 and lr > 0; got {steps}, {batch_size}, "
            f"{eval_every}, {lr}"
        )
    for name, data in (("train", train), ("test", test)):
        if data.ndim != 2 or len(data) < 1 or not bool(((data == 0) | (data == 1)).all()):
            raise ValueError(f"{name} images must be a non-empty (N, D) array of 0s and 1s")
    gen = torch.Generator().manual_seed(seed)
    model = BernoulliLatentLinear(train.shape[1], latent, nodes, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    hist = {"step": [], "train_lml": [], "test_lml": [], "objective_value": []}
    for step in range(steps + 1):
        batch = train[torch.randint(0, train.shape[0], (batch_size,), generator=gen)]
        value = (
            model.log_marginal(batch) if objective == "lml" else model.mpt_objective(batch, rate, 1, gen)
        ).mean()
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                hist["step"].append(step)
                hist["objective_value"].append(float(value))
                hist["train_lml"].append(float(model.log_marginal(train).mean()))
                hist["test_lml"].append(float(model.log_marginal(test).mean()))
            if not math.isfinite(hist["train_lml"][-1]):
                raise FloatingPointError(f"the LML is {hist['train_lml'][-1]} at step {step}")
            if log_fn is not None:
                log_fn(step, {k: v[-1] for k, v in hist.items() if k != "step"})
        if step == steps:
            break
        opt.zero_grad()
        (-value).backward()
        opt.step()
    with torch.no_grad():  # how far the rule is from the continuous integral, at the trained weights
        finer = BernoulliLatentLinear(train.shape[1], latent, 2 * nodes)
        finer.load_state_dict(
            {k: v for k, v in model.state_dict().items() if k in ("weight", "bias")}, strict=False
        )
        hist["test_lml_finer_rule"] = float(finer.log_marginal(test).mean())
    return model, hist
