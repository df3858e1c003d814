"""Bernoulli latent-linear model on binarised digits, trained by MPT, with its LML by quadrature.

The authors' exp_5_binary.py (MNIST, N = 1000, K = 2, 800 epochs) trains this model by MPT at a
fixed 15% rate and compares its LML with a linear VAE's. Here each objective trains the same model
from the same start and the exact (quadrature) LML is tracked on train and held-out digits:
'cumulative' (the unbiased MPT estimator: m ~ U{1..D} per datapoint), 'rate_<r>' (fixed rate) and
'lml' (the LML itself: the reference optimum for this model).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from tqdm import tqdm

from common.app import entrypoint
from common.data import load_dataset, train_test_split
from common.errors import BadInput
from papers.mpt_lml import config  # noqa: F401 - registers the schemas
from papers.mpt_lml.bernoulli import BernoulliLatentLinear
from papers.mpt_lml.summary import write_summary

log = logging.getLogger(__name__)


def binarised(
    name: str, threshold: float, test_fraction: float, max_train: int, data_dir: str, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened pixels in [0, 1] thresholded to {0, 1}: (train, test) float64."""
    train, test = train_test_split(load_dataset(name, data_dir=data_dir, seed=seed), test_fraction, seed)

    def flat(ds) -> torch.Tensor:
        return torch.from_numpy((ds.x.reshape(len(ds.x), -1) > threshold).astype(np.float64))

    return flat(train)[:max_train], flat(test)


def objective_rate(name: str) -> float | None:
    """None for the unbiased cumulative estimator, the rate for 'rate_<r>'; 'lml' handled apart."""
    if name == "cumulative":
        return None
    if name.startswith("rate_"):
        try:
            rate = float(name.removeprefix("rate_"))
        except ValueError:
            rate = -1.0
        if 0 < rate <= 1:
            return rate
    raise BadInput(f"objectives: unknown objective {name!r}; use cumulative, lml or rate_<r> with 0 < r <= 1")


def train_bernoulli(
    train: torch.Tensor,
    test: torch.Tensor,
    objective: str,
    latent: int,
    nodes: int,
    steps: int,
    batch_size: int,
    lr: float,
    eval_every: int,
    seed: int,
) -> dict:
    gen = torch.Generator().manual_seed(seed)
    model = BernoulliLatentLinear(train.shape[1], latent, nodes, generator=gen)
    rate = None if objective == "lml" else objective_rate(objective)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    hist = {"step": [], "train_lml": [], "test_lml": [], "objective_value": []}
    for step in tqdm(range(steps + 1), desc=f"Bernoulli by {objective}", leave=False, mininterval=5):
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
    return hist


@entrypoint("mpt_lml/bernoulli_digits")
def main(cfg, run):
    started = time.perf_counter()
    for name in cfg.objectives:
        if name != "lml":
            objective_rate(name)
    train, test = binarised(
        cfg.dataset, cfg.threshold, cfg.test_fraction, cfg.max_train, cfg.paths.data_dir, cfg.seed
    )
    log.info(
        "%s binarised at %.2f: %d train, %d test, %d pixels",
        cfg.dataset,
        cfg.threshold,
        train.shape[0],
        test.shape[0],
        train.shape[1],
    )
    cells = [
        {
            "dataset": cfg.dataset,
            "n_train": train.shape[0],
            "threshold": cfg.threshold,
            "latent": cfg.latent,
            "nodes_per_dim": cfg.nodes_per_dim,
            "objective": name,
            "steps": cfg.steps,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr,
            "seed": cfg.seed,
        }
        for name in cfg.objectives
    ]
    for cell in tqdm(cells, desc="Bernoulli objectives"):

        def fit(cell=cell):
            hist = train_bernoulli(
                train,
                test,
                cell["objective"],
                cfg.latent,
                cfg.nodes_per_dim,
                cfg.steps,
                cfg.batch_size,
                cfg.lr,
                cfg.eval_every,
                cfg.seed,
            )
            return {
                **hist,
                "final_train_lml": hist["train_lml"][-1],
                "final_test_lml": hist["test_lml"][-1],
                "initial_train_lml": hist["train_lml"][0],
                "pixels": train.shape[1],
            }

        row = run.results.run_cell(cell, fit)
        if row is not None and row["status"] == "ok":
            m = row["metrics"]
            log.info(
                "%s: train LML %.2f -> %.2f, test %.2f (at 2x nodes %.2f) nats/image",
                cell["objective"],
                m["initial_train_lml"],
                m["final_train_lml"],
                m["final_test_lml"],
                m["test_lml_finer_rule"],
            )
    return write_summary(run, cells, started)


if __name__ == "__main__":
    main()
