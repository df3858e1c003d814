"""Bernoulli latent-linear model on binarised MNIST, trained by MPT, with its LML by quadrature: the
authors' exp_5_binary.py (MNIST, N = 1000, K = 2, 800 epochs).

Each objective trains the same model from the same start: 'cumulative' (the unbiased MPT estimator,
m ~ U{1..D} per image), 'rate_<r>' (fixed rate, the authors' 15%) and 'lml' (the LML itself, the
reference optimum for this model). The exact (quadrature) LML is tracked on train and test images
and logged as training goes. At the trained weights, the cumulative MPT score of `mpt_images` test
images, from `mpt_orderings` random orderings each (every mask size), is set against their
quadrature LML: the MPT identity says they agree up to Monte Carlo error.
"""

from __future__ import annotations

import logging
import time

from common.app import entrypoint
from papers.mpt_lml import config  # noqa: F401 - registers the schemas

log = logging.getLogger(__name__)


def load_images(cfg):
    """(train, test) float64 images of 0s and 1s, flattened."""
    if cfg.dataset == "mnist":
        from papers.mpt_lml.mnist import binarised_mnist

        return (
            binarised_mnist("train", cfg.max_train, cfg.threshold)[0],
            binarised_mnist("test", cfg.max_test, cfg.threshold)[0],
        )
    import numpy as np
    import torch

    from common.data import load_dataset, train_test_split

    train, test = train_test_split(
        load_dataset(cfg.dataset, data_dir=cfg.paths.data_dir, seed=cfg.seed), cfg.test_fraction, cfg.seed
    )

    def flat(ds):
        return torch.from_numpy((ds.x.reshape(len(ds.x), -1) > cfg.threshold).astype(np.float64))

    return flat(train)[: cfg.max_train], flat(test)[: cfg.max_test]


@entrypoint("mpt_lml/bernoulli_digits")
def main(cfg, run):
    import torch
    from tqdm import tqdm

    from papers.mpt_lml.area import mean_sem
    from papers.mpt_lml.bernoulli import train_bernoulli
    from papers.mpt_lml.config import objective_rate
    from papers.mpt_lml.mlm_experiment import CurveLog
    from papers.mpt_lml.summary import write_summary

    started = time.perf_counter()
    train, test = load_images(cfg)
    if len(test) < cfg.mpt_images:
        from common.errors import BadInput

        raise BadInput(f"mpt_images: {cfg.mpt_images} exceeds the {len(test)} test images")
    log.info(
        "%s binarised at %.2f: %d train, %d test, %d pixels",
        cfg.dataset,
        cfg.threshold,
        train.shape[0],
        test.shape[0],
        train.shape[1],
    )
    curves = CurveLog(run)
    cells = [
        {
            "dataset": cfg.dataset,
            "n_train": train.shape[0],
            "n_test": test.shape[0],
            "threshold": cfg.threshold,
            "latent": cfg.latent,
            "nodes_per_dim": cfg.nodes_per_dim,
            "objective": name,
            "steps": cfg.steps,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr,
            "mpt_images": cfg.mpt_images,
            "mpt_orderings": cfg.mpt_orderings,
            "seed": cfg.seed,
        }
        for name in cfg.objectives
    ]
    for cell in tqdm(cells, desc="Bernoulli objectives"):

        def fit(cell=cell):
            name = cell["objective"]
            model, hist = train_bernoulli(
                train,
                test,
                name,
                objective_rate(name),
                cfg.latent,
                cfg.nodes_per_dim,
                cfg.steps,
                cfg.batch_size,
                cfg.lr,
                cfg.eval_every,
                cfg.seed,
                log_fn=lambda step, values: curves(name, step, values),
            )
            images = test[: cfg.mpt_images]
            with torch.no_grad():
                exact = model.log_marginal(images)
                sizes, chain = model.ordering_scores(
                    images, cfg.mpt_orderings, torch.Generator().manual_seed(cfg.seed + 7)
                )
            cumulative = sizes.sum(1).mean(0)
            mpt = {}
            for key, values in (
                ("mpt_quadrature_lml", exact),
                ("mpt_cumulative", cumulative),
                ("mpt_cumulative_minus_lml", cumulative - exact),
                ("mpt_chain_minus_lml", chain.mean(0) - exact),
            ):
                mpt[f"{key}_mean"], mpt[f"{key}_sem"] = mean_sem(values.numpy())
            return {
                **hist,
                **mpt,
                "mpt_size_curve": sizes.mean((0, 2)).tolist(),
                "final_train_lml": hist["train_lml"][-1],
                "final_test_lml": hist["test_lml"][-1],
                "initial_train_lml": hist["train_lml"][0],
                "pixels": train.shape[1],
            }

        row = run.results.run_cell(cell, fit)
        if row is not None and row["status"] == "ok":
            m = row["metrics"]
            log.info(
                "%s: train LML %.2f -> %.2f, test %.2f (at 2x nodes %.2f) nats/image; on %d test images "
                "quadrature LML %.2f, cumulative MPT %.2f (diff %+.3f ± %.3f)",
                cell["objective"],
                m["initial_train_lml"],
                m["final_train_lml"],
                m["final_test_lml"],
                m["test_lml_finer_rule"],
                cfg.mpt_images,
                m["mpt_quadrature_lml_mean"],
                m["mpt_cumulative_mean"],
                m["mpt_cumulative_minus_lml_mean"],
                m["mpt_cumulative_minus_lml_sem"],
            )
    return write_summary(run, cells, started)


if __name__ == "__main__":
    main()
