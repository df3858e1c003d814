"""The SLM benchmark on one GPU, for `make gpu-check`: it runs where hydra is absent (the GPU nodes).

plan=full: two OPT sizes with random fp16 weights on the hf engine, batches 1 to 512 at the paper
group's offline lengths (161 prompt, 338 output tokens), energy from the NVML counter; then the same
Pareto analysis as the benchmark (runner.run_benchmark). replication=true adds the replication
experiment: k = 1 and 2 instances of OPT-125M on the GPU. plan=small runs the same path with tiny
models on a CPU. Everything goes to <out>/slm_energy/, <out> being the GPU check's folder
(${paths.results_dir}/gpu/<device> unless given; commit it); `python -m papers.slm_energy.figures`
draws it into <figures>/slm_energy/gpu-<device>/. The plans are conf/slm_energy/plan/{full,small}.yaml.

    python -m papers.slm_energy.gpu_bench                          # plan=full, on a GPU node
    python -m papers.slm_energy.gpu_bench replication=true         # + replication, k = 1, 2
    python -m papers.slm_energy.gpu_bench plan=small out=/tmp/x    # the same path, tiny, on this CPU
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from common.app import entrypoint
from common.atomic import write_atomic
from common.errors import BadInput
from common.schema import RunConfig, spec
from common.serving.config import WorkloadConfig, check_models, workload_spec
from common.serving.models import DTYPES
from papers.slm_energy.analysis import AnalysisConfig, check_analysis

log = logging.getLogger(__name__)


@dataclass
class GpuBenchPlan:
    """What gpu_bench measures (conf/slm_energy/plan/<name>.yaml)."""

    name: str = spec(choices=("small", "full"))  # conf/plan: which plan this is
    models: list[str] = spec(nonempty=True, free="built-in architectures or checkpoints; checked by name")
    device: str = spec(choices=("cpu", "cuda"))
    dtype: str = spec(choices=DTYPES)
    batch_sizes: list[int] = spec(nonempty=True, ge=1)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    repeats: int = spec(ge=1)
    warmup_tokens: Optional[int] = spec(None, ge=1)  # new tokens per warm-up run; None: the workload's own
    replication_model: str = spec(free="a built-in architecture or a checkpoint; checked by name")
    replication_total_batches: list[int] = spec(nonempty=True, ge=2)  # over k = 1 and 2 instances: even


@dataclass
class GpuBenchConfig(RunConfig, AnalysisConfig):
    """conf/slm_energy/gpu_bench.yaml: a plan, where to write, and the benchmark's analysis keys."""

    plan: GpuBenchPlan = field(default_factory=GpuBenchPlan)
    out: Optional[str] = spec(None, free="the GPU check's folder; None: ${paths.results_dir}/gpu/<device>")
    replication: bool = spec(False, free="also replicate plan.replication_model k = 1, 2 times")
    budget_s: float = spec(gt=0)  # the replication is skipped past this many seconds

    def check(self) -> None:
        plan = self.plan
        check_models(plan.models, "plan.models")
        check_models([plan.replication_model], "plan.replication_model")
        workload_spec(plan.workload, "plan.workload")
        odd = [t for t in plan.replication_total_batches if t % 2]
        if odd:
            raise BadInput(f"plan.replication_total_batches: {odd} do not split between 2 instances")
        check_analysis(self)
        if plan.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise BadInput(
                    f"plan.device: cuda, but no CUDA device is visible to this python (torch "
                    f"{torch.__version__}); plan=small checks the path on a CPU"
                )


def scale_label(plan: str) -> str:
    """What pareto.json and the figures call a GPU check's run."""
    return "gpu_check" if plan == "full" else f"gpu_check_{plan}"


def benchmark(cfg, out: Path, hardware: dict, profile_dir: Path) -> dict:
    from common.results import ResultStore
    from papers.slm_energy.analysis import settings_from_config
    from papers.slm_energy.runner import make_plan, run_benchmark

    p = cfg.plan
    plan = make_plan(
        list(p.models),
        list(p.batch_sizes),
        [workload_spec(p.workload, "plan.workload")],
        settings_from_config(cfg),
        engine="hf",
        device=p.device,
        dtype=p.dtype,
        repeats=p.repeats,
        warmup=1,
        warmup_tokens=p.warmup_tokens,
        monitor="auto",
    )
    return run_benchmark(
        plan,
        ResultStore(out / "benchmark" / "results.jsonl"),
        out / "benchmark",
        hardware,
        scale_label(p.name),
        profile_dir=profile_dir,
    )


def replication(cfg, out: Path, hardware: dict) -> dict:
    from common.gpu_metrics import Monitor
    from common.results import ResultStore
    from common.serving.models import get_config
    from common.serving.workloads import sweep_requests
    from papers.slm_energy.replicas import Group, replication_summary, run_group
    from papers.slm_energy.runner import measuring_run

    p = cfg.plan
    model, totals = p.replication_model, list(p.replication_total_batches)
    workload = workload_spec(p.workload, "plan.workload")
    vocab = get_config(model).vocab_size
    folder = out / "replication"
    path = folder / f"requests_{workload.label}_v{vocab}.json"
    requests = sweep_requests(path, workload, max(totals), vocab)
    store = ResultStore(folder / "results.jsonl")
    groups = [
        Group(model, k, device=p.device, dtype=p.dtype, warmup_tokens=p.warmup_tokens, repeats=p.repeats)
        for k in (1, 2)
    ]
    rows, start, load = [], time.monotonic(), os.getloadavg()[0]
    cells = [g.cell(workload.label, p.device, t // g.replicas) for g in groups for t in totals]
    finished = sum(store.done(c) for c in cells)
    with Monitor("auto") as monitor:
        for g in groups:
            batches = [t // g.replicas for t in totals]
            rows += run_group(g, batches, workload.label, p.device, requests, store, monitor)
    ok = [r for r in rows if r["status"] == "ok"]
    conditions = measuring_run(
        folder / "replication.json",
        finished < len(cells),
        [load, os.getloadavg()[0]],
        time.monotonic() - start,
    )
    summary = {
        "hardware": hardware,
        "scale": scale_label(p.name),
        "model": model,
        "workload": workload.label,
        "cores": sorted(os.sched_getaffinity(0)),
        **conditions,
        "device": p.device,
        "failed_cells": len(rows) - len(ok),
        **replication_summary(ok, cfg.tolerance),
    }
    write_atomic(folder / "replication.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary


@entrypoint("slm_energy/gpu_bench", schema=GpuBenchConfig, plain=True)
def main(cfg, run):
    import torch

    from common.hardware import profile_dir
    from common.serving.bench.gpu_check import device_slug
    from common.serving.bench.record import provenance, to_plain

    start = time.monotonic()
    info = provenance(torch.device(cfg.plan.device))
    name = info["hardware"]["device"]
    base = Path(cfg.out) if cfg.out else Path(cfg.paths.results_dir) / "gpu" / device_slug(name)
    out = base / "slm_energy"
    log.info("slm_energy gpu_bench (plan=%s) on %s -> %s", cfg.plan.name, name, out)
    write_atomic(
        out / "env.json",
        json.dumps({**info, "config": to_plain(cfg), "run_dir": str(run.dir)}, indent=2, default=str) + "\n",
    )
    summary = benchmark(cfg, out, info["hardware"], profile_dir(cfg.paths.results_dir))
    log.info("benchmark done at %.0f s (%d failed cells)", time.monotonic() - start, summary["failed_cells"])
    if cfg.replication:
        if time.monotonic() - start < cfg.budget_s:
            replication(cfg, out, info["hardware"])
            log.info("replication done at %.0f s", time.monotonic() - start)
        else:
            log.warning(
                "replication skipped: %.0f s is past the %.0f s budget",
                time.monotonic() - start,
                cfg.budget_s,
            )
    return str(out)


if __name__ == "__main__":
    main()
