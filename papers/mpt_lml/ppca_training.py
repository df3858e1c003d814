"""Training PPCA by masked pre-training, with the exact LML tracked against the ML optimum.

The authors' exp_3_training_fig1/2/3.py (D = 10, N = 2000, K = 2, 1000 epochs, Adam): cumulative
MPT with one mask per size (every size from one random ordering per step), and fixed masking rates
of 20% and 80% (objective D * S(m0)). Each step scores the whole data set, so the only noise in the
gradient is the masks'. The reference is the Tipping & Bishop closed-form maximum of the same
likelihood, which no objective can exceed. The exact LML is logged as training goes (train/...).
"""

from __future__ import annotations

import logging
import time

from common.app import entrypoint
from papers.mpt_lml import config  # noqa: F401 - registers the schemas

log = logging.getLogger(__name__)


@entrypoint("mpt_lml/ppca_training")
def main(cfg, run):
    import torch
    from tqdm import tqdm

    from papers.mpt_lml.gaussian import sample_ppca
    from papers.mpt_lml.mlm_experiment import CurveLog
    from papers.mpt_lml.ppca import optimum_lml, train_ppca
    from papers.mpt_lml.summary import write_summary

    started = time.perf_counter()
    curves = CurveLog(run)
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
                log_fn=lambda step, values, cell=cell: curves(
                    f"{cell['objective']}/seed{cell['seed']}", step, values
                ),
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
