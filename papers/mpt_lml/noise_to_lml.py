"""From noise to LML: the whole MPT curve S(m) rising during training, its area tracking the LML.

PPCA trained by cumulative MPT (one mask per size) from a random start; at each checkpoint the
curve S(m) over m = 1..D is measured with `curve_masks_per_size` masks per size, next to the exact
LML. At every checkpoint the area is an unbiased estimate of that checkpoint's LML, so the curve of
a poor model sits low and flat-ish and rises as training raises the LML.
"""

from __future__ import annotations

import logging
import time

from common.app import entrypoint
from papers.mpt_lml import config  # noqa: F401 - registers the schemas

log = logging.getLogger(__name__)


@entrypoint("mpt_lml/noise_to_lml")
def main(cfg, run):
    import torch

    from papers.mpt_lml.gaussian import Moments, mc_scores, sample_ppca
    from papers.mpt_lml.mlm_experiment import CurveLog
    from papers.mpt_lml.ppca import optimum_lml, train_ppca
    from papers.mpt_lml.summary import write_summary

    started = time.perf_counter()
    training_log = CurveLog(run)
    _, x = sample_ppca(
        cfg.dim, cfg.latent, cfg.n_data, cfg.noise_std, torch.Generator().manual_seed(cfg.seed)
    )
    data = Moments.of(x)
    cell = {
        "dim": cfg.dim,
        "latent": cfg.latent,
        "n_data": cfg.n_data,
        "noise_std": cfg.noise_std,
        "steps": cfg.steps,
        "lr": cfg.lr,
        "checkpoints": list(cfg.checkpoints),
        "curve_masks_per_size": cfg.curve_masks_per_size,
        "seed": cfg.seed,
    }

    def train():
        curves = []
        wanted = set(cfg.checkpoints)

        def on_eval(step, model):
            if step not in wanted:
                return
            with torch.no_grad():
                g = model.gaussian()
                gen = torch.Generator().manual_seed(cfg.seed * 1000 + step)
                score = mc_scores(g, data, cfg.curve_masks_per_size, gen)
                curves.append(
                    {
                        "step": step,
                        "score": score.tolist(),
                        "area": float(score.sum()),
                        "lml": float(g.mean_log_prob(data)),
                    }
                )
            log.info("step %d: area %.3f, exact LML %.3f", step, curves[-1]["area"], curves[-1]["lml"])

        hist = train_ppca(
            x,
            cfg.latent,
            "cumulative",
            cfg.steps,
            cfg.lr,
            1,
            cfg.seed,
            1,
            on_eval,
            log_fn=lambda step, values: training_log("cumulative", step, values),
        )
        return {
            "curves": curves,
            "share_masked": [m / cfg.dim for m in range(1, cfg.dim + 1)],
            "optimum_lml": optimum_lml(x, cfg.latent),
            "lml_trace": hist["lml"],
        }

    run.results.run_cell(cell, train)
    return write_summary(run, [cell], started)


if __name__ == "__main__":
    main()
