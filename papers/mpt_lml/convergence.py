"""Convergence of the Monte Carlo cumulative MPT score to the exact LML as masks per size grow.

The authors' exp_1_convergence_fig1.py (PPCA, D = 5 and 50, K = 2): for each number P of masks per
size, `replicates` independent estimates sum_m S_hat(x; m) (nats per datapoint) are set against the
closed-form LML. Two estimators with P masks per size: 'independent' draws fresh masks for every
size (as the authors do), 'orderings' takes every size from P random orderings (nested masks, one
factorisation per ordering; what training uses). Where D is small the exhaustive score (all 2^D
masks) is recorded too: it must equal the LML.
"""

from __future__ import annotations

import logging
import time

from common.app import entrypoint
from papers.mpt_lml import config  # noqa: F401 - registers the schemas

log = logging.getLogger(__name__)
EXHAUSTIVE_MAX_DIM = 12  # 2^12 masks take seconds; beyond that the exhaustive sum is out of reach
ESTIMATORS = ("independent", "orderings")


def replicate_estimates(estimator: str, g, data, masks: int, replicates: int, seed: int):
    """Cumulative MC estimates of the mean LML, one per independently seeded replicate."""
    import numpy as np
    import torch

    from papers.mpt_lml.gaussian import cumulative_score, mc_scores, permutation_scores

    scores = {"independent": mc_scores, "orderings": permutation_scores}[estimator]
    return np.array(
        [
            float(cumulative_score(scores(g, data, masks, torch.Generator().manual_seed(seed * 100_003 + r))))
            for r in range(replicates)
        ]
    )


@entrypoint("mpt_lml/convergence", x_axis="masks_per_size")
def main(cfg, run):
    import numpy as np
    import torch
    from tqdm import tqdm

    from papers.mpt_lml.gaussian import Moments, cumulative_score, exhaustive_scores, sample_ppca
    from papers.mpt_lml.summary import write_summary

    started = time.perf_counter()
    cells = []
    for dim in cfg.dims:
        g, x = sample_ppca(
            dim, cfg.latent, cfg.n_data, cfg.noise_std, torch.Generator().manual_seed(cfg.seed * 1000 + dim)
        )
        exact = float(g.log_prob(x).mean())
        log.info("D=%d: exact LML %.4f nats/datapoint", dim, exact)
        data = Moments.of(x)
        exhaustive = (
            float(cumulative_score(exhaustive_scores(g, data))) if dim <= EXHAUSTIVE_MAX_DIM else None
        )
        grid = [(e, p) for e in ESTIMATORS for p in cfg.masks_per_size]
        for estimator, masks in tqdm(grid, desc=f"D={dim}: estimator x masks per size", mininterval=5):
            cell = {
                "dim": dim,
                "latent": cfg.latent,
                "n_data": cfg.n_data,
                "noise_std": cfg.noise_std,
                "estimator": estimator,
                "masks_per_size": masks,
                "replicates": cfg.replicates,
                "seed": cfg.seed,
            }
            cells.append(cell)

            def measure(
                g=g, data=data, dim=dim, estimator=estimator, masks=masks, exact=exact, exhaustive=exhaustive
            ):
                est = replicate_estimates(
                    estimator, g, data, masks, cfg.replicates, cfg.seed * 1000 + dim * 7 + masks
                )
                sem = est.std(ddof=1) / np.sqrt(len(est))
                return {
                    "exact_lml": exact,
                    "exhaustive_mpt": exhaustive,
                    "estimates": est.tolist(),
                    "mean": est.mean(),
                    "std": est.std(ddof=1),
                    "sem": sem,
                    "z": (est.mean() - exact) / sem,
                    "rmse": float(np.sqrt(((est - exact) ** 2).mean())),
                }

            row = run.results.run_cell(cell, measure)
            if row is not None and row["status"] == "ok":
                m = row["metrics"]
                log.info(
                    "D=%d %s P=%d: mean %.4f (exact %.4f), std %.4f, z %.2f",
                    dim,
                    estimator,
                    masks,
                    m["mean"],
                    m["exact_lml"],
                    m["std"],
                    m["z"],
                )
    return write_summary(run, cells, started)


if __name__ == "__main__":
    main()
