"""The SLM benchmark on a GPU without hydra, for `make gpu-check` (the GPU nodes have no hydra).

Two OPT sizes with random fp16 weights on the hf engine, batches 1 to 512 at the paper group's offline
lengths (161 prompt, 338 output tokens), energy from the NVML counter; then the same Pareto analysis
as the hydra entry point (runner.run_benchmark). Optionally the replication experiment: OPT-125M,
k = 1 and 2 instances on the GPU. Everything goes to results/gpu/<device>/slm_energy/ (commit it);
`python -m papers.slm_energy.figures` draws it into figures/slm_energy/gpu-<device>/.

    python -m papers.slm_energy.gpu_bench                        # on a GPU node (not yet timed on one)
    python -m papers.slm_energy.gpu_bench --replication          # + replication, k = 1, 2
    python -m papers.slm_energy.gpu_bench --dry-run --out /tmp/x # the same path, tiny, on this CPU
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import torch

from common.atomic import write_atomic
from common.repo import REPO_ROOT
from common.results import ResultStore
from common.serving.bench.gpu_check import device_slug
from common.serving.bench.record import provenance
from common.serving.models import get_config
from common.serving.workloads import PAPER_OUTPUT_LEN, PAPER_PROMPT_LEN, WorkloadSpec, sweep_requests
from papers.slm_energy.analysis import Settings
from papers.slm_energy.replicas import Group, replication_summary, run_group
from papers.slm_energy.runner import make_plan, measuring_run, run_benchmark

log = logging.getLogger("slm_energy.gpu_bench")

FULL = {"models": ["opt-125m", "opt-1.3b"], "device": "cuda", "dtype": "fp16",
        "batch_sizes": [1, 4, 16, 64, 256, 512], "prompt_len": PAPER_PROMPT_LEN,
        "output_len": PAPER_OUTPUT_LEN, "repeats": 1, "warmup_tokens": 8, "replication_model": "opt-125m",
        "replication_total_batches": [32, 128, 512]}
DRY = {"models": ["opt-tiny", "llama-tiny"], "device": "cpu", "dtype": "fp32", "batch_sizes": [1, 2],
       "prompt_len": 8, "output_len": 4, "repeats": 1, "warmup_tokens": 2, "replication_model": "opt-tiny",
       "replication_total_batches": [2, 4]}
SETTINGS = Settings(tolerance=0.05, latency_metric="e2e_ms_mean",
                    roofline_devices=("a100-40gb", "a100-80gb", "h100-sxm-80gb"), roofline_dtype="fp16",
                    memory_utilization=0.9, max_batch=16384)


def benchmark(cfg: dict, out: Path, hardware: dict, scale: str) -> dict:
    workload = WorkloadSpec("fixed", cfg["prompt_len"], cfg["output_len"])
    plan = make_plan(cfg["models"], cfg["batch_sizes"], [workload], SETTINGS, engine="hf",
                     device=cfg["device"], dtype=cfg["dtype"], repeats=cfg["repeats"], warmup=1,
                     warmup_tokens=cfg["warmup_tokens"], monitor="auto")
    return run_benchmark(plan, ResultStore(out / "benchmark" / "results.jsonl"), out / "benchmark",
                         hardware, scale)


def replication(cfg: dict, out: Path, hardware: dict, scale: str) -> dict:
    from common.gpu_metrics import Monitor

    model, totals = cfg["replication_model"], cfg["replication_total_batches"]
    workload = WorkloadSpec("fixed", cfg["prompt_len"], cfg["output_len"])
    vocab = get_config(model).vocab_size
    folder = out / "replication"
    path = folder / f"requests_{workload.label}_v{vocab}.json"
    requests = sweep_requests(path, workload, max(totals), vocab)
    store = ResultStore(folder / "results.jsonl")
    groups = [Group(model, k, device=cfg["device"], dtype=cfg["dtype"], warmup_tokens=cfg["warmup_tokens"],
                    repeats=cfg["repeats"]) for k in (1, 2)]
    rows, start, load = [], time.monotonic(), os.getloadavg()[0]
    cells = [g.cell(workload.label, cfg["device"], t // g.replicas) for g in groups for t in totals]
    finished = sum(store.done(c) for c in cells)
    with Monitor("auto") as monitor:
        for g in groups:
            batches = [t // g.replicas for t in totals]
            rows += run_group(g, batches, workload.label, cfg["device"], requests, store, monitor)
    ok = [r for r in rows if r["status"] == "ok"]
    conditions = measuring_run(folder / "replication.json", finished < len(cells),
                               [load, os.getloadavg()[0]], time.monotonic() - start)
    summary = {"hardware": hardware, "scale": scale, "model": model, "workload": workload.label,
               "cores": sorted(os.sched_getaffinity(0)), **conditions,
               "device": cfg["device"], "failed_cells": len(rows) - len(ok),
               **replication_summary(ok, SETTINGS.tolerance)}
    write_atomic(folder / "replication.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true", help="tiny models on the CPU: checks the path only")
    p.add_argument("--out", default=None, help="default: results/gpu/<device>/slm_energy/")
    p.add_argument("--replication", action="store_true", help="also k = 1, 2 instances of OPT-125M")
    p.add_argument("--budget-s", type=float, default=240.0, help="skip the replication past this")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    cfg = DRY if args.dry_run else FULL
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        log.error("no CUDA device visible (torch %s); --dry-run checks the path on a CPU", torch.__version__)
        return 2
    start = time.monotonic()
    info = provenance(torch.device(cfg["device"]))
    name = info["hardware"]["device"]
    out = Path(args.out) if args.out else REPO_ROOT / "results" / "gpu" / device_slug(name) / "slm_energy"
    scale = "gpu_check_dry_run" if args.dry_run else "gpu_check"
    log.info("slm_energy gpu_bench on %s -> %s", name, out)
    write_atomic(out / "env.json", json.dumps({**info, "config": cfg}, indent=2, default=str) + "\n")
    summary = benchmark(cfg, out, info["hardware"], scale)
    log.info("benchmark done at %.0f s (%d failed cells)", time.monotonic() - start, summary["failed_cells"])
    if args.replication:
        if time.monotonic() - start < args.budget_s:
            replication(cfg, out, info["hardware"], scale)
            log.info("replication done at %.0f s", time.monotonic() - start)
        else:
            log.warning("replication skipped: %.0f s is past the %.0f s budget", time.monotonic() - start,
                        args.budget_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
