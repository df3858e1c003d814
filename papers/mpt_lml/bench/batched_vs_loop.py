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

    python -m papers.mpt_lml.bench.batched_vs_loop [--dim 50 --n 100 --masks 200 --repeats 10]

Prints JSON and writes it to results/mpt_lml/bench/batched_vs_loop.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from common.config import write_atomic
from common.runinfo import REPO_ROOT, hardware_summary
from papers.mpt_lml.gaussian import Moments, mask_scores, nested_masks, permutation_scores, sample_ppca


def per_size_batched(g, data, masks_by_size):
    return torch.stack([mask_scores(g, data, masks).mean(0) for masks in masks_by_size])


def per_mask_loop(g, data, masks_by_size):
    return torch.stack(
        [
            torch.stack([mask_scores(g, data, masks[p : p + 1])[0] for p in range(masks.shape[0])]).mean(0)
            for masks in masks_by_size
        ]
    )


def best_time(fn, repeats: int) -> tuple[float, float, torch.Tensor]:
    """Best wall and best CPU (process) time of `repeats` calls, and the last output. On a shared
    machine the wall clock also counts time spent waiting for a core; CPU time counts the work."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=50)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--masks", type=int, default=200)
    parser.add_argument("--latent", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--loop-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--out", default=str(REPO_ROOT / "results" / "mpt_lml" / "bench" / "batched_vs_loop.json")
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    g, x = sample_ppca(args.dim, args.latent, args.n, 0.2, gen)
    g.precision  # noqa: B018 - factorise once, outside every timing
    orders = torch.rand(args.masks, args.dim, generator=gen, dtype=torch.float64).argsort(-1)
    nested = [nested_masks(orders, m) for m in range(1, args.dim + 1)]
    result = {
        "dim": args.dim,
        "n": args.n,
        "masks_per_size": args.masks,
        "threads": args.threads,
        "exact_lml_mean": float(g.log_prob(x).mean()),
        "device": hardware_summary()["device"],
    }
    for output, data in (("data_mean", Moments.of(x)), ("per_datapoint", x)):
        loop_wall, loop_cpu, s_loop = best_time(
            lambda data=data: per_mask_loop(g, data, nested), args.loop_repeats
        )
        batched = {
            "orderings": lambda data=data: permutation_scores(g, data, args.masks, orders=orders),
            "per_size": lambda data=data: per_size_batched(g, data, nested),
        }
        for name, fn in batched.items():
            wall, cpu, s_batched = best_time(fn, args.repeats)
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
    print(json.dumps(result, indent=1))
    write_atomic(Path(args.out), json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
