"""PPCA trained by masked pre-training: the model, the objectives, the training loop, and the
Tipping & Bishop closed-form optimum it is measured against (ppca_training and noise_to_lml)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from tqdm import tqdm

from papers.mpt_lml.gaussian import (
    Gaussian,
    Moments,
    fixed_rate_objective,
    permutation_scores,
    ppca,
    ppca_ml,
)


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
        if 0 < rate < 1:
            return lambda g, data, gen: fixed_rate_objective(g, data, rate, masks_per_size, gen)
    raise ValueError(f"unknown objective {name!r}; use cumulative, lml or rate_<r> with 0 < r < 1")


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
    log_fn: Callable[[int, dict], None] | None = None,
) -> dict:
    """Adam with a cosine decay to zero (so the mask noise averages out at the end), full batch:
    the data enter only through their moments, so a step costs the same for any N.

    Returns the objective and the exact LML (nats per datapoint) every `eval_every` steps, which
    `log_fn(step, values)` also receives as they happen (the run's training curves).
    """
    if steps < 1 or eval_every < 1 or masks_per_size < 1 or not lr > 0:
        raise ValueError(
            f"need steps, eval_every, masks_per_size >= 1 and lr > 0; got {steps}, "
            f"{eval_every}, {masks_per_size}, {lr}"
        )
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
            if not math.isfinite(history["lml"][-1]):
                raise FloatingPointError(f"the LML is {history['lml'][-1]} at step {step}")
            if log_fn is not None:
                log_fn(step, {"lml": history["lml"][-1], "objective": history["objective_value"][-1]})
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
