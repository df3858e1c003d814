"""The benchmark without hydra: a plan from validated settings -> serving sweep per model -> pareto.json.

The hydra entry point (benchmark.py) and the GPU check (gpu_bench.py) both call `run_benchmark`, so the
cluster's numbers and this machine's come from one code path; their schemas validate the settings
(common.serving.config, papers.slm_energy.config). Each model gets its own request list
(requests/<model>/), as models may stop at different batch sizes (`max_batch`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from common.atomic import write_atomic
from common.serving.models import device_type
from common.serving.workloads import WorkloadSpec
from papers.slm_energy.analysis import Settings, analyse, predict_only

if TYPE_CHECKING:
    import pandas as pd

    from common.results import ResultStore
    from common.serving.harness import SweepSpec

log = logging.getLogger(__name__)
SUMMARY = "pareto.json"


@dataclass
class Plan:
    spec: SweepSpec
    settings: Settings
    max_batch: dict[str, int] = field(default_factory=dict)  # model -> largest batch it runs

    def batches(self, model: str) -> list[int]:
        cap = self.max_batch.get(model)
        return [b for b in self.spec.batch_sizes if cap is None or b <= cap]


def make_plan(
    models,
    batch_sizes,
    workloads: list[WorkloadSpec],
    settings: Settings,
    max_batch: dict[str, int] | None = None,
    **sweep,
) -> Plan:
    """The plan of validated settings; `sweep` holds the remaining SweepSpec fields (engine, dtype, ...)."""
    from common.serving.harness import SweepSpec

    # caps of models not in this run are ignored: hydra merges dicts, so scale=paper cannot drop a key
    max_batch = {m: cap for m, cap in (max_batch or {}).items() if m in models}
    if sweep.get("engine") == "vllm":  # vLLM queues what exceeds max_num_seqs: let every batch run whole
        sweep["engine_options"] = {"max_num_seqs": max(batch_sizes), **sweep.get("engine_options", {})}
    spec = SweepSpec(models=list(models), batch_sizes=sorted(batch_sizes), workloads=workloads, **sweep)
    return Plan(spec, settings, max_batch)


def extra_cell(device: str) -> dict:
    """On a CPU the thread count changes what is measured, so it belongs in the cell's key."""
    import torch

    return {"torch_threads": torch.get_num_threads()} if device == "cpu" else {}


def plan_rows(plan: Plan, frame: pd.DataFrame, extra: dict) -> pd.DataFrame:
    """The store's rows that belong to this plan (a store may keep cells of an earlier, larger plan)."""
    import numpy as np

    if frame.empty:
        return frame
    s = plan.spec
    labels = {w.label for w in s.workloads}
    keep = (
        frame["engine"].eq(s.engine)
        & frame["dtype"].eq(s.dtype)
        & frame["workload"].isin(labels)
        & frame["model"].isin(s.models)
    )
    keep &= np.array([b in plan.batches(m) for m, b in zip(frame["model"], frame["batch_size"])], dtype=bool)
    for key, value in extra.items():
        keep &= frame[key].eq(value) if key in frame else False
    return frame[keep]


def measuring_run(previous: Path, measured: bool, load: list[float], elapsed_s: float) -> dict:
    """Load average and duration of the run that measured the cells: a rerun that measured nothing
    keeps the earlier run's (its own say nothing about the numbers)."""
    if not measured and previous.is_file():
        old = json.loads(previous.read_text())
        return {"load_avg_1m": old.get("load_avg_1m"), "elapsed_s": old.get("elapsed_s")}
    return {"load_avg_1m": load, "elapsed_s": elapsed_s}


def run_benchmark(
    plan: Plan,
    store: ResultStore,
    result_dir: str | Path,
    hardware: dict,
    scale: str,
    progress: bool = True,
    profile_dir: str | Path | None = None,
) -> dict:
    """Measure every unfinished cell, then write <result_dir>/pareto.json (the figures read it).
    profile_dir: where this host's measured profile is (the roofline of a CPU run's own device)."""
    from common.serving.harness import cell_for, run_sweep

    result_dir = Path(result_dir)
    start, load = time.monotonic(), [os.getloadavg()[0]]
    device = device_type(plan.spec.device)
    extra = extra_cell(device)
    to_run = sum(
        not store.done({**cell_for(plan.spec, m, w, b, device), **extra})
        for m in plan.spec.models
        for w in plan.spec.workloads
        for b in plan.batches(m)
    )
    for model in plan.spec.models:
        sub = dataclasses.replace(plan.spec, models=[model], batch_sizes=plan.batches(model))
        run_sweep(sub, store, result_dir / "requests" / model, progress=progress, extra_cell=extra or None)
    conditions = measuring_run(
        result_dir / SUMMARY, to_run > 0, [load[0], os.getloadavg()[0]], time.monotonic() - start
    )
    frame = plan_rows(plan, store.load(status=None), extra)
    groups = analyse(frame, plan.settings, profile_dir)
    for g in groups:
        p = g["pareto"]
        growth = "saturated" if p["saturated"] else "still growing at the largest batch"
        log.info(
            "%s %s on %s: Pareto batch %d (%.0f tok/s, %s), memory %.2f%% of %.1f GiB measured, "
            "%.2f%% from the model; energy: %s",
            g["model"],
            g["workload"],
            g["device_name"],
            p["batch"],
            p["throughput_tok_s"],
            growth,
            100 * (p["memory_share_measured"] or float("nan")),
            p["capacity_bytes"] / 2**30,
            100 * p["memory_share_model"],
            g["energy"]["missing_reason"] or f"{g['energy']['pareto_energy_per_token_j']:.4g} J/token",
        )
        for key, r in g["roofline"].items():
            if "batch" in r:
                log.info(
                    "  roofline %s: Pareto batch %d needs %.1f%% of %.0f GiB (%s)",
                    key,
                    r["batch"],
                    100 * r["memory_share"],
                    r["capacity_bytes"] / 2**30,
                    "fits"
                    if r["fits"]
                    else f"does NOT fit; at most {r['largest_batch_that_fits']} sequences do",
                )
    summary = {
        "hardware": hardware,
        "scale": scale,
        **conditions,
        "settings": dataclasses.asdict(plan.settings),
        "sweep": {
            "engine": plan.spec.engine,
            "dtype": plan.spec.dtype,
            "repeats": plan.spec.repeats,
            "batch_sizes": {m: plan.batches(m) for m in plan.spec.models},
            "workloads": [w.label for w in plan.spec.workloads],
        },
        "failed_cells": int((frame["status"] != "ok").sum()) if not frame.empty else 0,
        "models": groups,
        "predicted": predict_only(plan.settings),
    }
    write_atomic(result_dir / SUMMARY, json.dumps(summary, indent=2, default=str) + "\n")
    return summary
