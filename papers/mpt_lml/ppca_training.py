"""Training PPCA by masked pre-training, with the exact LML tracked against the ML optimum.

The authors' exp_3_training_fig1/2/3.py (D = 10, N = 2000, K = 2, 1000 epochs, Adam): cumulative
MPT with one mask per size (every size from one random ordering per step), and fixed masking rates
of 20% and 80% (objective D * S(m0)). Each step scores the whole data set, so the only noise in the
gradient is the masks'. The reference is the
Tipping & Bishop closed-form maximum of the same likelihood, which no objective can exceed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import torch
from torch import nn
from tqdm import tqdm

from common.app import entrypoint
from common.errors import BadInput
from papers.mpt_lml import config  # noqa: F401 - registers the schemas
from papers.mpt_lml.gaussian import (
    Gaussian,
    Moments,
    fixed_rate_objective,
    permutation_scores,
    ppca,
    ppca_ml,
    sample_ppca,
)
from papers.mpt_lml.summary import write_summary

log = logging.getLogger(__name__)


class PPCAModel(nn.Module):
    """W, log noise variance and mean, all learned; initialised as the authors do (W ~ N(0, 1))."""

    def __init__(self, dim: int, latent: int, generator: torch.Generator):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim, latent, dtype=torch.float64, generator=generator))
        self.log_noise = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.mean = nn.Parameter(torch.zeros(dim, dtype=torch.float64))

    def gaussian(self) -> Gaussian:
        return ppca(self.weight, self.log_noise.exp(), self.mean)


def objective_fn(
    name: str, masks_per_size: int
) -> Callable[[Gaussian, Moments, torch.Generator], torch.Tensor]:
    """'cumulative' (sum over sizes, P masks each from P random orderings), 'rate_<r>'
    (D * S(round(r D)), P masks) or 'lml' (exact), each in nats per datapoint, to be maximised."""
    if name == "cumulative":
        return lambda g, data, gen: permutation_scores(g, data, masks_per_size, gen).sum()
    if name == "lml":
        return lambda g, data, gen: g.mean_log_prob(data)
    if name.startswith("rate_"):
        try:
            rate = float(name.removeprefix("rate_"))
        except ValueError:
            rate = -1.0
        if 0 < rate <= 1:
            return lambda g, data, gen: fixed_rate_objective(g, data, rate, masks_per_size, gen)
    raise BadInput(f"objectives: unknown objective {name!r}; use cumulative, lml or rate_<r> with 0 < r <= 1")


def train_ppca(
    x: torch.Tensor,
    latent: int,
    objective: str,
    steps: int,
    lr: float,
    masks_per_size: int,
    seed: int,
    eval_every: int,
    on_eval: Callable[[int, PPCAModel], None] | None = None,
) -> dict:
    """Adam with a cosine decay to zero (so the mask noise averages out at the end), full batch:
    the data enter only through their moments, so a step costs the same for any N.

    Returns the objective and the exact LML (nats per datapoint) every `eval_every` steps.
    """
    gen = torch.Generator().manual_seed(seed)
    data = Moments.of(x)
    model = PPCAModel(x.shape[1], latent, gen)
    step_objective = objective_fn(objective, masks_per_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    history = {"step": [], "objective_value": [], "lml": []}
    for step in tqdm(range(steps + 1), desc=f"PPCA by {objective}", leave=False, mininterval=5):
        value = step_objective(model.gaussian(), data, gen)
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                history["step"].append(step)
                history["objective_value"].append(float(value))
                history["lml"].append(float(model.gaussian().mean_log_prob(data)))
            if on_eval is not None:
                on_eval(step, model)
        if step == steps:
            break
        opt.zero_grad()
        (-value).backward()
        opt.step()
        sched.step()
    return history


def optimum_lml(x: torch.Tensor, latent: int) -> float:
    """Mean LML at the Tipping & Bishop closed-form maximum-likelihood parameters."""
    weight, noise, mean = ppca_ml(x, latent)
    return float(ppca(weight, noise, mean).log_prob(x).mean())


@entrypoint("mpt_lml/ppca_training")
def main(cfg, run):
    started = time.perf_counter()
    for name in cfg.objectives:
        objective_fn(name, cfg.masks_per_size)  # fail on a bad name before any work
    true_model, x = sample_ppca(
        cfg.dim, cfg.latent, cfg.n_data, cfg.noise_std, torch.Generator().manual_seed(cfg.seed)
    )
    optimum = optimum_lml(x, cfg.latent)
    true_lml = float(true_model.log_prob(x).mean())
    log.info("closed-form optimum %.4f, generating model %.4f nats/datapoint", optimum, true_lml)
    cells = [
        {
            "dim": cfg.dim,
            "latent": cfg.latent,
            "n_data": cfg.n_data,
            "noise_std": cfg.noise_std,
            "objective": name,
            "masks_per_size": cfg.masks_per_size,
            "steps": cfg.steps,
            "lr": cfg.lr,
            "eval_every": cfg.eval_every,
            "data_seed": cfg.seed,
            "seed": s,
        }
        for name in cfg.objectives
        for s in cfg.seeds
    ]
    for cell in tqdm(cells, desc="PPCA training runs"):

        def train(cell=cell):
            hist = train_ppca(
                x,
                cfg.latent,
                cell["objective"],
                cfg.steps,
                cfg.lr,
                cfg.masks_per_size,
                cell["seed"],
                cfg.eval_every,
            )
            return {
                **hist,
                "final_lml": hist["lml"][-1],
                "optimum_lml": optimum,
                "true_lml": true_lml,
                "gap_to_optimum": optimum - hist["lml"][-1],
                "initial_lml": hist["lml"][0],
            }

        row = run.results.run_cell(cell, train)
        if row is not None and row["status"] == "ok":
            m = row["metrics"]
            log.info(
                "%s seed %d: LML %.4f -> %.4f, optimum %.4f (gap %.4f nats/datapoint)",
                cell["objective"],
                cell["seed"],
                m["initial_lml"],
                m["final_lml"],
                optimum,
                m["gap_to_optimum"],
            )
            run.logger.log({f"{cell['objective']}/final_lml": m["final_lml"], "optimum_lml": optimum})
    return write_summary(run, cells, started, optimum_lml=optimum, true_lml=true_lml)


if __name__ == "__main__":
    main()
