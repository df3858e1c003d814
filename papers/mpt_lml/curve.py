"""The MPT curve: S(x; m) against the share of masked tokens m/D, whose area is the LML.

The authors' exp_2_area_fig1.py / fig2.py (PPCA, D = 200 tokens, K = 5 and 50, P = 1 and 100 masks
per size, drawn independently for every size as the authors do). S(m) is averaged over the data
(from their moments) and its area sum_m S(m) set against the closed-form mean LML; with P = 1 the
curve is noisy but its area is still an unbiased LML estimate.
"""

from __future__ import annotations

import logging
import time

from common.app import entrypoint
from papers.mpt_lml import config  # noqa: F401 - registers the schemas

log = logging.getLogger(__name__)


@entrypoint("mpt_lml/curve")
def main(cfg, run):
    import torch
    from tqdm import tqdm

    from papers.mpt_lml.gaussian import Moments, mc_scores, sample_ppca
    from papers.mpt_lml.summary import write_summary

    started = time.perf_counter()
    cells = [
        {
            "dim": cfg.dim,
            "latent": k,
            "n_data": cfg.n_data,
            "noise_std": cfg.noise_std,
            "masks_per_size": p,
            "seed": cfg.seed,
        }
        for k in cfg.latents
        for p in cfg.masks_per_size
    ]
    for cell in tqdm(cells, desc="MPT curves"):

        def measure(cell=cell):
            g, x = sample_ppca(
                cfg.dim,
                cell["latent"],
                cfg.n_data,
                cfg.noise_std,
                torch.Generator().manual_seed(cfg.seed * 1000 + cell["latent"]),
            )
            gen = torch.Generator().manual_seed(
                cfg.seed * 1000 + cell["latent"] + 17 * cell["masks_per_size"]
            )
            scores = mc_scores(g, Moments.of(x), cell["masks_per_size"], gen)  # mean over data, m = 1..D
            exact = float(g.log_prob(x).mean())
            return {
                "share_masked": [m / cfg.dim for m in range(1, cfg.dim + 1)],
                "score": scores.tolist(),
                "area": float(scores.sum()),
                "exact_lml": exact,
                "area_minus_lml": float(scores.sum()) - exact,
            }

        row = run.results.run_cell(cell, measure)
        if row is not None and row["status"] == "ok":
            m = row["metrics"]
            log.info(
                "K=%d P=%d: area %.3f, exact LML %.3f nats/datapoint",
                cell["latent"],
                cell["masks_per_size"],
                m["area"],
                m["exact_lml"],
            )
    return write_summary(run, cells, started)


if __name__ == "__main__":
    main()
