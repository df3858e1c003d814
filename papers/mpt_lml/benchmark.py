"""Benchmark: the batched MC MPT estimators against three per-mask loops over the very same masks.

D = 50, N = 100, P = 200 random orderings by default (each gives one mask of every size: 10,000
masks), one torch thread, float64. Every method is timed the same way: best of `repeats` calls, in
CPU time of this process (and wall time beside it). The batched estimators are
- `orderings`: `permutation_scores`, one Cholesky per ordering for every size at once (what the
  experiments and training use);
- `per_size`: `mask_scores` with all P masks of one size in one batched call.
The baselines score one mask at a time:
- `loop_authors`: the authors' style, per mask `np.linalg.inv` of the unmasked block and the
  conditional mean and variance of every datapoint (per-datapoint work, no moments);
- `loop_torch`: this package's `mask_scores` called with one mask (the loop this benchmark used to
  compare against);
- `loop_lean`: a lean numpy loop on the data's moments (the second moment about the model mean and
  Lambda S Lambda precomputed once; per mask one small inverse or solve and a few reductions): the
  fastest per-mask loop we could write, and the one the README quotes the speedup against.
Every method's S(m) must agree with the others to rounding.

    python -m papers.mpt_lml.benchmark [dim=50 n=100 masks=200 repeats=5]

Writes <result_dir>/batched_vs_loop.json (results/mpt_lml/benchmark/<scale>/, under paths.results_dir).
"""

from __future__ import annotations

import json
import logging
import math
import time

import papers.mpt_lml.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.atomic import write_atomic

log = logging.getLogger(__name__)


def per_size_batched(g, data, masks_by_size):
    import torch

    from papers.mpt_lml.gaussian import mask_scores

    return torch.stack([mask_scores(g, data, masks).mean(0) for masks in masks_by_size])


def loop_torch(g, data, masks_by_size):
    import torch

    from papers.mpt_lml.gaussian import mask_scores

    return torch.stack(
        [
            torch.stack([mask_scores(g, data, masks[p : p + 1])[0] for p in range(masks.shape[0])]).mean(0)
            for masks in masks_by_size
        ]
    )


def loop_lean(cov, prec, second, outer, orders):
    """S(m) averaged over the data, one mask at a time in numpy, from the moments: second = S (the
    data's second moment about the model mean), outer = Lambda S Lambda."""
    import numpy as np

    dim, count = orders.shape[1], orders.shape[0]
    diag_c, diag_s = np.diag(cov), np.diag(second)
    out = np.empty(dim)
    for m in range(1, dim + 1):
        acc = 0.0
        for p in range(count):
            masked = orders[p, dim - m :]
            if m == dim:
                var, quad = diag_c[masked], diag_s[masked]
            elif m <= dim - m:  # precision route: Lambda_MM^-1
                inv = np.linalg.inv(prec[masked][:, masked])
                var = inv.diagonal()
                quad = ((inv @ outer[masked][:, masked]) * inv).sum(1)
            else:  # covariance route: K = C_RR^-1 C_RM
                rest = orders[p, : dim - m]
                c_r, s_r = cov[rest], second[rest]
                gain = np.linalg.solve(c_r[:, rest], c_r[:, masked])
                var = diag_c[masked] - (gain * c_r[:, masked]).sum(0)
                quad = (
                    diag_s[masked]
                    - 2 * (gain * s_r[:, masked]).sum(0)
                    + (gain * (s_r[:, rest] @ gain)).sum(0)
                )
            acc += (np.log(var) + quad / var).mean()
        out[m - 1] = -0.5 * (math.log(2 * math.pi) + acc / count)
    return out


def loop_authors(cov, mean, x, orders):
    """S(m) averaged over the data, the authors' way: per mask, the inverse of the unmasked block and
    the conditional Gaussian of every datapoint's masked tokens."""
    import numpy as np

    dim, count = orders.shape[1], orders.shape[0]
    centred = x - mean
    out = np.empty(dim)
    for m in range(1, dim + 1):
        acc = 0.0
        for p in range(count):
            masked, rest = orders[p, dim - m :], orders[p, : dim - m]
            if len(rest):
                inv = np.linalg.inv(cov[np.ix_(rest, rest)])
                cross = cov[np.ix_(masked, rest)] @ inv
                cond_mean = centred[:, rest] @ cross.T  # (N, m)
                cond_var = np.diag(cov[np.ix_(masked, masked)] - cross @ cov[np.ix_(rest, masked)])
            else:
                cond_mean, cond_var = 0.0, np.diag(cov)[masked]
            resid = centred[:, masked] - cond_mean
            logp = -0.5 * (np.log(2 * np.pi * cond_var) + resid**2 / cond_var)  # (N, m)
            acc += logp.mean()
        out[m - 1] = acc / count
    return out


def best_time(fn, repeats: int) -> dict:
    """Best CPU (process) time and best wall time of `repeats` calls, and the last output. On a
    shared machine the wall clock also counts time spent waiting for a core; CPU time counts the work."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"cpu_s": min(cpus), "wall_s": min(walls), "out": out}


@entrypoint("mpt_lml/benchmark")
def main(cfg, run):
    import numpy as np
    import torch

    from papers.mpt_lml.gaussian import Moments, nested_masks, permutation_scores, sample_ppca

    gen = torch.Generator().manual_seed(cfg.seed)
    g, x = sample_ppca(cfg.dim, cfg.latent, cfg.n, 0.2, gen)
    g.precision  # noqa: B018 - factorise once, outside every timing
    orders = torch.rand(cfg.masks, cfg.dim, generator=gen, dtype=torch.float64).argsort(-1)
    nested = [nested_masks(orders, m) for m in range(1, cfg.dim + 1)]
    moments = Moments.of(x)
    moments.scatter_factor  # noqa: B018 - the data's factor, once
    second, outer = (t.numpy() for t in g.second_moments(moments))
    cov, prec, mean = g.cov.numpy(), g.precision.numpy(), g.mean.numpy()
    orders_np, x_np = orders.numpy(), x.numpy()
    methods = {
        "data_mean": {
            "orderings": lambda: permutation_scores(g, moments, cfg.masks, orders=orders),
            "per_size": lambda: per_size_batched(g, moments, nested),
            "loop_authors": lambda: loop_authors(cov, mean, x_np, orders_np),
            "loop_torch": lambda: loop_torch(g, moments, nested),
            "loop_lean": lambda: loop_lean(cov, prec, second, outer, orders_np),
        },
        "per_datapoint": {
            "orderings": lambda: permutation_scores(g, x, cfg.masks, orders=orders),
            "per_size": lambda: per_size_batched(g, x, nested),
            "loop_torch": lambda: loop_torch(g, x, nested),
        },
    }
    result = {
        "dim": cfg.dim,
        "n": cfg.n,
        "masks_per_size": cfg.masks,
        "masks": cfg.masks * cfg.dim,
        "repeats": cfg.repeats,
        "threads": torch.get_num_threads(),
        "measure": f"best of {cfg.repeats} calls, CPU time of the process (wall beside it), every method "
        "alike",
        "exact_lml_mean": float(g.log_prob(x).mean()),
        "device": run.info["hardware"]["device"],
    }
    for output, fns in methods.items():
        timed = {}
        for name, fn in fns.items():
            timed[name] = best_time(fn, cfg.repeats)
            log.info("%s %s: %.4f s CPU", output, name, timed[name]["cpu_s"])
        reference = np.asarray(timed["loop_torch"]["out"])
        if output == "per_datapoint":
            reference = reference.mean(-1)
        for name, t in timed.items():
            s = np.asarray(t["out"])
            s = s.mean(-1) if s.ndim > 1 else s  # per datapoint -> the data mean, to compare
            result[f"{output}/{name}"] = {
                "cpu_s": t["cpu_s"],
                "wall_s": t["wall_s"],
                "max_abs_diff_to_loop_torch": float(np.abs(s - reference).max()),
                "cumulative_mean": float(s.sum()),
            }
        for fast in ("orderings", "per_size"):
            for slow in (k for k in fns if k.startswith("loop_")):
                row = result[f"{output}/{fast}"]
                row[f"speedup_cpu_vs_{slow}"] = timed[slow]["cpu_s"] / timed[fast]["cpu_s"]
                row[f"speedup_wall_vs_{slow}"] = timed[slow]["wall_s"] / timed[fast]["wall_s"]
    worst = max(v["max_abs_diff_to_loop_torch"] for k, v in result.items() if isinstance(v, dict))
    if not worst < 1e-8:
        raise RuntimeError(f"the methods disagree by {worst:.3g} nats: a timing of different results")
    log.info("%s", json.dumps(result, indent=1))
    log.info(
        "orderings estimator, data mean: %.1fx the lean loop, %.1fx the authors' loop (CPU time)",
        result["data_mean/orderings"]["speedup_cpu_vs_loop_lean"],
        result["data_mean/orderings"]["speedup_cpu_vs_loop_authors"],
    )
    write_atomic(run.result_dir / "batched_vs_loop.json", json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
