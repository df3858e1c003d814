"""Update-statistics baselines FRIDA is compared with.

- l2, std: the L2 norm and the standard deviation of each update, scored as |robust z| across the
  round's clients (a free-rider may sit above or below the honest crowd).
- cosine: the cosine distance of each update to that of another client drawn at random.
- dagmm, std_dagmm: a Deep Autoencoding Gaussian Mixture Model (Zong et al. 2018) fit on the updates
  seen so far; its sample energy is the score. STD-DAGMM (Lin et al. 2019) appends each update's
  standard deviation to the latent vector the mixture models.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from papers.frida.detectors.base import DetectorOutput, RoundView, outlier_flags, robust_z


def _outlier_output(values: np.ndarray, threshold: float, key: str) -> DetectorOutput:
    z = np.abs(robust_z(values))
    return DetectorOutput(z, outlier_flags(z, threshold), {key: values})


class L2Norm:
    name = "l2"

    def __call__(self, view: RoundView) -> DetectorOutput:
        return _outlier_output(np.linalg.norm(view.updates, axis=1), view.fed.z_threshold, "norm")


class UpdateStd:
    name = "std"

    def __call__(self, view: RoundView) -> DetectorOutput:
        return _outlier_output(view.updates.std(axis=1), view.fed.z_threshold, "std")


class CosineToRandom:
    name = "cosine"

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed + 31)

    def __call__(self, view: RoundView) -> DetectorOutput:
        u = view.updates
        n = len(u)
        norms = np.linalg.norm(u, axis=1)
        dist = np.zeros(n)
        for i in range(n):
            j = (i + 1 + self.rng.integers(n - 1)) % n if n > 1 else i
            denom = norms[i] * norms[j]
            dist[i] = 1.0 - (u[i] @ u[j] / denom if denom > 0 else 0.0)
        return _outlier_output(dist, view.fed.z_threshold, "distance")


class DAGMMNet(nn.Module):
    """Compression network (autoencoder) + estimation network (soft GMM membership)."""

    def __init__(self, dim: int, extra: int, hidden: int = 32, latent: int = 2, components: int = 2):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, dim))
        self.estimator = nn.Sequential(nn.Linear(latent + 2 + extra, 10), nn.Tanh(),
                                       nn.Linear(10, components), nn.Softmax(dim=1))

    def forward(self, x, extra):
        zc = self.encoder(x)
        rec = self.decoder(zc)
        # inputs are scaled to a median norm of 1; the floor keeps an all-zero update (a plain
        # free-rider) from producing an astronomically large relative error
        rel = (x - rec).norm(dim=1) / x.norm(dim=1).clamp_min(0.1)
        cos = nn.functional.cosine_similarity(x, rec, dim=1)
        z = torch.cat([zc, rel[:, None], cos[:, None], extra], dim=1)
        return rec, z, self.estimator(z)


def gmm_energy(z: torch.Tensor, gamma: torch.Tensor, eps: float = 1e-4):
    """Sample energy -log sum_k phi_k N(z | mu_k, Sigma_k), parameters from the soft memberships."""
    phi = gamma.mean(0)
    mu = (gamma.T @ z) / gamma.sum(0)[:, None].clamp_min(1e-12)
    diff = z[None] - mu[:, None]  # [K, N, D]
    cov = torch.einsum("nk,kni,knj->kij", gamma, diff, diff) / gamma.sum(0)[:, None, None].clamp_min(1e-12)
    cov = cov + eps * torch.eye(z.shape[1])
    dist = torch.distributions.MultivariateNormal(mu, covariance_matrix=cov, validate_args=False)
    logp = dist.log_prob(z[:, None]) + torch.log(phi.clamp_min(1e-12))  # [N, K]
    energy = -torch.logsumexp(logp, dim=1)
    penalty = (1.0 / torch.diagonal(cov, dim1=1, dim2=2)).sum()
    return energy, penalty


class DAGMM:
    """Refit each round (warm start) on the updates of recent rounds, then score this round's.

    Updates are first mapped by a fixed Gaussian random projection to `dim` coordinates
    (Johnson-Lindenstrauss: norms and angles survive) so the autoencoder costs milliseconds per
    round instead of seconds on 2 CPU cores; `dim=0` feeds the raw updates as in Lin et al.
    """

    def __init__(self, seed: int, steps: int, with_std: bool, dim: int, window: int = 50):
        self.name = "std_dagmm" if with_std else "dagmm"
        self.seed, self.steps, self.with_std, self.dim, self.window = seed, steps, with_std, dim, window
        self.pool: list[np.ndarray] = []
        self.net: DAGMMNet | None = None
        self.projection: torch.Tensor | None = None

    def _project(self, u: np.ndarray) -> np.ndarray:
        if not self.dim or self.dim >= u.shape[1]:
            return u
        if self.projection is None:
            gen = torch.Generator().manual_seed(self.seed + 17)
            self.projection = torch.randn(u.shape[1], self.dim, generator=gen, dtype=torch.float64)
            self.projection /= np.sqrt(self.dim)
        # torch, not numpy: numpy's BLAS threads fight torch's for the same 2 cores
        return (torch.as_tensor(u) @ self.projection).numpy()

    def __call__(self, view: RoundView) -> DetectorOutput:
        u = view.updates
        # the std feature of STD-DAGMM is that of the raw update, not of its projection
        raw_std = u.std(axis=1)
        u = self._project(u)
        self.pool = (self.pool + list(np.column_stack([u, raw_std])))[-self.window:]
        pool, pool_std = np.stack(self.pool)[:, :-1], np.stack(self.pool)[:, -1:]
        scale = float(np.median(np.linalg.norm(pool, axis=1))) or 1.0
        std_scale = float(np.median(pool_std)) or 1.0
        if self.net is None:
            torch.manual_seed(self.seed)
            self.net = DAGMMNet(u.shape[1], 1 if self.with_std else 0)
            self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        x = torch.as_tensor(pool / scale, dtype=torch.float32)
        extra = torch.as_tensor(pool_std / std_scale, dtype=torch.float32) if self.with_std \
            else torch.zeros(len(x), 0)
        self.net.train()
        for _ in range(self.steps):
            self.opt.zero_grad()
            rec, z, gamma = self.net(x, extra)
            energy, penalty = gmm_energy(z, gamma)
            loss = ((x - rec) ** 2).sum(1).mean() + 0.1 * energy.mean() + 0.005 * penalty
            loss.backward()
            self.opt.step()
        self.net.eval()
        with torch.no_grad():  # this round's updates are the pool's last rows
            _, z, gamma = self.net(x, extra)
            energy, _ = gmm_energy(z, gamma)
        scores = energy[-len(u):].double().numpy()
        return DetectorOutput(scores, outlier_flags(robust_z(scores), view.fed.z_threshold))
