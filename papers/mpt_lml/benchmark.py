"""Benchmark: batched MC MPT scores against a per-mask loop over the very same masks.

D = 50, N = 100, P = 200 masks per size by default, one torch thread, float64. The loop calls
`mask_scores` with one mask at a time; the batched estimators are
- `orderings`: `permutation_scores`, P random orderings, each one mask of every size (nested), all
  from one batched Cholesky per ordering: the estimator the experiments and training use;
- `per_size`: `mask_scores` with all P masks of one size in one batched call (independent masks
  per size, as `mc_scores` draws them).
Each is timed for data-averaged scores (from `Moments`) and per-datapoint scores (N values per
mask, whose arithmetic grows with N, so the loop's per-call overhead is a smaller share). The values
must agree with the loop's to rounding.

    python -m papers.mpt_lml.benchmark [dim=50 n=100 masks=200 repeats=10]

Logs the result and writes it to <result_dir>/batched_vs_loop.json (results/mpt_lml/benchmark/<scale>/).
"""

from __future__ import annotations

import json
import logging
import time

import papers.mpt_lml.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.atomic import write_atomic

log = logging.getLogger(__name__)


def per_size_batched(g, data, masks_by_size):
    import torch

    from papers.mpt_lml.gaussian import mask_scores

    return torch.stack([mask_scores(g, data, masks).mean(0) for masks in masks_by_size])


def per_mask_loop(g, data, masks_by_size):
    import torch

    from papers.mpt_lml.gaussian import mask_scores

    return torch.stack(
        [
            torch.stack([mask_scores(g, data, masks[p : p + 1])[0] for p in range(masks.shape[0])]).mean(0)
            for masks in masks_by_size
        ]
    )


def best_time(fn, repeats: int) -> tuple:
    """Best wall and best CPU (process) time of `repeats` calls, and the last output. On a shared
    machine the wall clock also counts time spent waiting for a core; CPU time counts the work."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), out


@entrypoint("mpt_lml/benchmark")
def main(cfg, run):
    import torch

    from papers.mpt_lml.gaussian import Moments, nested_masks, permutation_scores, sample_ppca

    gen = torch.Generator().manual_seed(0)
    g, x = sample_ppca(cfg.dim, cfg.latent, cfg.n, 0.2, gen)
    g.precision  # noqa: B018 - factorise once, outside every timing
    orders = torch.rand(cfg.masks, cfg.dim, generator=gen, dtype=torch.float64).argsort(-1)
    nested = [nested_masks(orders, m) for m in range(1, cfg.dim + 1)]
    result = {
        "dim": cfg.dim,
        "n": cfg.n,
        "masks_per_size": cfg.masks,
        "threads": torch.get_num_threads(),
        "exact_lml_mean": float(g.log_prob(x).mean()),
        "device": run.info["hardware"]["device"],
    }
    for output, data in (("data_mean", Moments.of(x)), ("per_datapoint", x)):
        loop_wall, loop_cpu, s_loop = best_time(
            lambda data=data: per_mask_loop(g, data, nested), cfg.loop_repeats
        )
        batched = {
            "orderings": lambda data=data: permutation_scores(g, data, cfg.masks, orders=orders),
            "per_size": lambda data=data: per_size_batched(g, data, nested),
        }
        for name, fn in batched.items():
            wall, cpu, s_batched = best_time(fn, cfg.repeats)
            result[f"{name}/{output}"] = {
                "batched_wall_s": wall,
                "loop_wall_s": loop_wall,
                "speedup_wall": loop_wall / wall,
                "batched_cpu_s": cpu,
                "loop_cpu_s": loop_cpu,
                "speedup_cpu": loop_cpu / cpu,
                "max_abs_diff": float((s_batched - s_loop).abs().max()),
                "cumulative_mean": float(s_batched.sum(0).mean()),
            }
    log.info("%s", json.dumps(result, indent=1))
    write_atomic(run.result_dir / "batched_vs_loop.json", json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
