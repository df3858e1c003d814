"""Replication: k instances of a small model on one device against one instance at its best batch.

    python -m papers.slm_energy.replication                 # opt-16m, k = 1, 2 on this CPU's 2 cores
    python -m papers.slm_energy.replication scale=paper     # OPT-125M, k = 1, 2, 4 on one GPU

Rows (one per k and per-instance batch) go to <result_dir>/results.jsonl; the gains over one instance
to <result_dir>/replication.json.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import papers.slm_energy.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.atomic import write_atomic
from common.serving import config as serving

log = logging.getLogger(__name__)
SUMMARY = "replication.json"


def groups_from_config(cfg) -> list:
    """One replication Group per instance count, from the (validated) config."""
    from papers.slm_energy.replicas import Group

    cores = list(cfg.cores) if cfg.cores is not None else sorted(os.sched_getaffinity(0))
    groups = []
    for k in sorted(set(cfg.replicas)):
        options = serving.plain(cfg.engine_options)
        if cfg.engine == "vllm":  # the k instances share the GPU's memory
            options = {
                "gpu_memory_utilization": cfg.memory_utilization / k,
                "max_num_seqs": max(cfg.total_batches) // k,
                **options,
            }
        groups.append(
            Group(
                model=cfg.model,
                replicas=k,
                engine=cfg.engine,
                engine_options=options,
                device=cfg.device,
                dtype=cfg.dtype,
                cores=cores,
                warmup=cfg.warmup,
                warmup_tokens=cfg.warmup_tokens,
                repeats=cfg.repeats,
                timeout_s=cfg.instance_timeout_s,
            )
        )
    return groups


@entrypoint("slm_energy/replication", x_axis="total_batch")
def main(cfg, run):
    from rich.progress import Progress

    from common.gpu_metrics import Monitor
    from common.serving.models import device_type, get_config
    from common.serving.workloads import sweep_requests
    from papers.slm_energy.replicas import replication_summary, run_group
    from papers.slm_energy.runner import measuring_run

    groups = groups_from_config(cfg)
    workload = serving.workload_spec(cfg.workload)
    device = device_type(cfg.device)
    vocab = get_config(cfg.model).vocab_size
    path = Path(run.result_dir) / f"requests_{workload.label}_v{vocab}.json"
    requests = sweep_requests(path, workload, max(cfg.total_batches), vocab)
    batches = {g.replicas: sorted(t // g.replicas for t in cfg.total_batches) for g in groups}
    cells = [g.cell(workload.label, device, b) for g in groups for b in batches[g.replicas]]
    start, load = time.monotonic(), os.getloadavg()[0]
    log.info(
        "replication of %s: k in %s x total batch %s on %s (cores %s, load average %.1f)",
        cfg.model,
        [g.replicas for g in groups],
        sorted(cfg.total_batches),
        run.info["hardware"]["device"],
        groups[0].cores,
        load,
    )
    finished = sum(run.results.done(c) for c in cells)
    with (
        Monitor(backend=cfg.monitor, sample_hz=cfg.sample_hz) as monitor,
        Progress(disable=not cfg.progress) as bar,
    ):
        task = bar.add_task("replication cells", total=len(cells), completed=finished)
        rows = [
            row
            for g in groups
            for row in run_group(
                g,
                batches[g.replicas],
                workload.label,
                device,
                requests,
                run.results,
                monitor,
                lambda: bar.advance(task),
            )
        ]
    conditions = measuring_run(
        Path(run.result_dir) / SUMMARY,
        finished < len(cells),
        [load, os.getloadavg()[0]],
        time.monotonic() - start,
    )
    ok = [r for r in rows if r["status"] == "ok"]
    summary = {
        "hardware": run.info["hardware"],
        "scale": cfg.scale.name,
        "model": cfg.model,
        "workload": workload.label,
        "cores": groups[0].cores,
        **conditions,
        "device": device,
        "failed_cells": len(rows) - len(ok),
        **(replication_summary(ok, cfg.tolerance) if ok else {"per_k": {}, "gains": []}),
    }
    write_atomic(Path(run.result_dir) / SUMMARY, json.dumps(summary, indent=2, default=str) + "\n")
    for gain in summary["gains"]:
        log.info(
            "k=%d: throughput x%.2f over one instance at its best batch (latency x%.2f)",
            gain["replicas"],
            gain["throughput_gain_at_best"],
            gain["latency_ratio_at_best"],
        )
    run.logger.table("replication", ok)
    return summary


if __name__ == "__main__":
    main()
