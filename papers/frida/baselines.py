"""Update-statistics baselines FRIDA is compared with, each scored in the direction it was designed for.

Every baseline computes one statistic per client (`extras["stat"]`) and scores it in its designed
direction (higher score = more suspicious); flags are robust-z outliers of that score. The metrics
(metrics.py) also report each baseline's ROC-AUC with the score flipped, so a reader sees the better
of the two directions after the fact, labelled as such (an in-sample choice a deployed detector could
not make without labels).

- l2: the L2 norm of the update. Designed: *low* is suspicious (a client that does not train moves
  the model less than one that does).
- std: the standard deviation of the update's coordinates (the statistic STD-DAGMM adds, Lin et al.
  2019). Designed: *low* is suspicious, for the same reason.
- cosine: the cosine distance of the update to that of another client drawn at random. Designed:
  *high* is suspicious (an outlier).
- foolsgold: FoolsGold-style similarity (Fung et al. 2020): the largest cosine similarity between a
  client's accumulated updates (the sum of its updates so far) and another sampled client's. Designed:
  *high* is suspicious (clients that copy the same thing look alike).
- dagmm, std_dagmm: a Deep Autoencoding Gaussian Mixture Model (Zong et al. 2018) fit on the updates
  seen so far; its sample energy is the score, *high* is suspicious. STD-DAGMM (Lin et al. 2019)
  appends each update's standard deviation to the latent vector the mixture models.
- delta_dagmm: our reading of Delta-DAGMM (Huang et al. 2022), which feeds DAGMM processed model
  increments: the change of a client's update since its previous participation (its first update when
  it has none), with the update's standard deviation; energy, *high* is suspicious.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from papers.frida.detectors.base import DetectorOutput, RoundView, outlier_flags, robust_z

HIGH, LOW = "high", "low"


def _output(stat: np.ndarray, direction: str, threshold: float, **extras) -> DetectorOutput:
    score = stat if direction == HIGH else -stat
    return DetectorOutput(score, outlier_flags(robust_z(score), threshold), {"stat": stat, **extras})


class L2Norm:
    name, direction = "l2", LOW

    def __call__(self, view: RoundView) -> DetectorOutput:
        return _output(np.linalg.norm(view.updates, axis=1), self.direction, view.fed.z_threshold)


class UpdateStd:
    name, direction = "std", LOW

    def __call__(self, view: RoundView) -> DetectorOutput:
        return _output(view.updates.std(axis=1), self.direction, view.fed.z_threshold)


def _cosine_matrix(u: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(u, axis=1)
    unit = u / np.where(norms > 0, norms, 1.0)[:, None]
    return unit @ unit.T


class CosineToRandom:
    name, direction = "cosine", HIGH

    def __init__(self, seed: int):
        self.seed = seed

    def __call__(self, view: RoundView) -> DetectorOutput:
        u = view.updates
        n = len(u)
        sim = _cosine_matrix(u)
        rng = np.random.default_rng([self.seed, 31, view.server_round])  # per round: same under every runtime
        partner = (np.arange(n) + 1 + rng.integers(n - 1, size=n)) % n if n > 1 else np.arange(n)
        dist = 1.0 - sim[np.arange(n), partner]
        return _output(dist, self.direction, view.fed.z_threshold)


class FoolsGold:
    name, direction = "foolsgold", HIGH

    def __init__(self):
        self.history: dict[int, np.ndarray] = {}

    def __call__(self, view: RoundView) -> DetectorOutput:
        u = view.updates
        for c, row in zip(view.clients, u):
            self.history[c.partition_id] = self.history.get(c.partition_id, 0.0) + row
        h = np.stack([self.history[c.partition_id] for c in view.clients])
        sim = _cosine_matrix(h)
        np.fill_diagonal(sim, -np.inf)
        return _output(
            sim.max(axis=1) if len(h) > 1 else np.zeros(len(h)), self.direction, view.fed.z_threshold
        )


class DAGMMNet(nn.Module):
    """Compression network (autoencoder) + estimation network (soft GMM membership)."""

    def __init__(self, dim: int, extra: int, hidden: int = 32, latent: int = 2, components: int = 2):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, dim))
        self.estimator = nn.Sequential(
            nn.Linear(latent + 2 + extra, 10), nn.Tanh(), nn.Linear(10, components), nn.Softmax(dim=1)
        )

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


@functools.lru_cache(maxsize=2)
def _projection(params: int, dim: int, seed: int) -> torch.Tensor:
    """A fixed Gaussian random projection [params, dim] (float32: 50k x 256 is 50 MB), shared by every
    DAGMM of a process."""
    gen = torch.Generator().manual_seed(seed + 17)
    return torch.randn(params, dim, generator=gen) / np.sqrt(dim)


def project(view: RoundView, dim: int, seed: int) -> np.ndarray:
    """This round's updates through the shared projection (once per round for all DAGMMs)."""
    u = view.updates
    if not dim or dim >= u.shape[1]:
        return u
    key = ("projected", dim)
    if key not in view.cache:
        # torch, not numpy: numpy's BLAS threads fight torch's for the same 2 cores
        view.cache[key] = (
            (torch.as_tensor(u, dtype=torch.float32) @ _projection(u.shape[1], dim, seed)).double().numpy()
        )
    return view.cache[key]


class DAGMM:
    """Refit each round (warm start) on the updates of recent rounds, then score this round's.

    Updates are first mapped by a fixed Gaussian random projection to `dim` coordinates
    (Johnson-Lindenstrauss: norms and angles survive) so the autoencoder costs milliseconds per
    round instead of seconds on 2 CPU cores; `dim=0` feeds the raw updates as in Lin et al.
    `mode`: "plain" (DAGMM), "std" (STD-DAGMM) or "delta" (Delta-DAGMM, see the module doc).
    """

    direction = HIGH

    def __init__(self, seed: int, steps: int, mode: str, dim: int, window: int = 50):
        self.name = {"plain": "dagmm", "std": "std_dagmm", "delta": "delta_dagmm"}[mode]
        self.seed, self.steps, self.mode, self.dim, self.window = seed, steps, mode, dim, window
        self.pool: list[np.ndarray] = []
        self.previous: dict[int, np.ndarray] = {}  # delta: each partition's last (projected) update
        self.net: DAGMMNet | None = None

    def __call__(self, view: RoundView) -> DetectorOutput:
        # the std feature is that of the raw update, not of its projection
        raw_std = view.updates.std(axis=1)
        u = project(view, self.dim, self.seed)
        if self.mode == "delta":
            rows = []
            for c, row in zip(view.clients, u):
                rows.append(row - self.previous.get(c.partition_id, 0.0))
                self.previous[c.partition_id] = row
            u = np.stack(rows)
        self.pool = (self.pool + list(np.column_stack([u, raw_std])))[-self.window :]
        pool, pool_std = np.stack(self.pool)[:, :-1], np.stack(self.pool)[:, -1:]
        scale = float(np.median(np.linalg.norm(pool, axis=1))) or 1.0
        std_scale = float(np.median(pool_std)) or 1.0
        with_std = self.mode in ("std", "delta")
        if self.net is None:
            torch.manual_seed(self.seed)
            self.net = DAGMMNet(u.shape[1], 1 if with_std else 0)
            self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        x = torch.as_tensor(pool / scale, dtype=torch.float32)
        extra = (
            torch.as_tensor(pool_std / std_scale, dtype=torch.float32) if with_std else torch.zeros(len(x), 0)
        )
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
        return _output(energy[-len(u) :].double().numpy(), self.direction, view.fed.z_threshold)


DIRECTIONS = {
    "l2": LOW,
    "std": LOW,
    "cosine": HIGH,
    "foolsgold": HIGH,
    "dagmm": HIGH,
    "std_dagmm": HIGH,
    "delta_dagmm": HIGH,
}
