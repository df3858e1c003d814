"""The benchmark without hydra: checked settings -> serving sweep per model -> pareto.json.

The hydra entry point (benchmark.py) and the GPU check (gpu_bench.py) both call `run_benchmark`, so the
cluster's numbers and this machine's come from one code path. Each model gets its own request list
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

import numpy as np
import pandas as pd

from common.atomic import write_atomic
from common.errors import BadInput
from common.hardware import DTYPES as SPEC_DTYPES
from common.hardware import SPECS
from common.results import ResultStore
from common.serving.harness import SweepSpec, cell_for, run_sweep
from common.serving.models import ARCHS, DTYPES, SMOLLM2, resolve_device
from common.serving.workloads import KINDS, WorkloadSpec
from papers.slm_energy.analysis import LATENCY_METRICS, Settings, analyse, predict_only

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


def check_models(models, key: str = "models") -> None:
    unknown = [m for m in models if m not in ARCHS and m != SMOLLM2 and "/" not in m]
    if not models or unknown:
        raise BadInput(f"{key}: {list(unknown) or 'empty'}: use built-in models ({', '.join(ARCHS)}, "
                       f"{SMOLLM2}) or a real checkpoint (hub org/name or a local path)")


def check_serving(engine: str, dtype: str, batch_sizes, key: str = "batch_sizes") -> None:
    if engine not in ("hf", "vllm"):
        raise BadInput(f"engine: {engine!r} is not hf or vllm")
    if dtype not in DTYPES:
        raise BadInput(f"dtype: {dtype!r} is not one of {sorted(DTYPES)}")
    if not batch_sizes or min(batch_sizes) < 1:
        raise BadInput(f"{key}: {list(batch_sizes)} must be a non-empty list of sizes >= 1")


def workload_spec(w, key: str) -> WorkloadSpec:
    if w.kind not in KINDS:
        raise BadInput(f"{key}.kind: {w.kind!r} is not one of {KINDS}")
    if w.kind == "sharegpt" and not (w.sharegpt_path and Path(w.sharegpt_path).is_file()):
        raise BadInput(f"{key}.sharegpt_path: kind=sharegpt needs a local ShareGPT JSON file, "
                       f"not {w.sharegpt_path!r}")
    if min(w.prompt_len, w.output_len) < 1:
        raise BadInput(f"{key}: prompt_len and output_len must be >= 1")
    return WorkloadSpec(w.kind, w.prompt_len, w.output_len, w.sharegpt_path, w.seed)


def check_settings(s: Settings) -> None:
    if s.latency_metric not in LATENCY_METRICS:
        raise BadInput(f"latency_metric: {s.latency_metric!r} is not one of {LATENCY_METRICS}")
    if s.tolerance < 0:
        raise BadInput(f"tolerance: {s.tolerance} must be >= 0 (a fraction: 0.05 is 5%)")
    unknown = [d for d in s.roofline_devices if d not in SPECS]
    if unknown:
        raise BadInput(f"roofline.devices: {unknown} are not spec sheets ({', '.join(SPECS)})")
    if s.roofline_dtype not in SPEC_DTYPES:
        raise BadInput(f"roofline.dtype: {s.roofline_dtype!r} is not one of {SPEC_DTYPES}")
    if not 0 < s.memory_utilization <= 1:
        raise BadInput(f"roofline.memory_utilization: {s.memory_utilization} must be in (0, 1]")
    if s.max_batch < 1:
        raise BadInput(f"roofline.max_batch: {s.max_batch} must be >= 1")
    if s.predict_models:
        check_models(s.predict_models, "roofline.models")
    if min(s.predict_prompt_len, s.predict_output_len) < 1:
        raise BadInput("roofline.prompt_len and roofline.output_len must be >= 1")


def make_plan(models, batch_sizes, workloads: list[WorkloadSpec], settings: Settings,
              max_batch: dict[str, int] | None = None, **sweep) -> Plan:
    """A checked plan; `sweep` holds the remaining SweepSpec fields (engine, dtype, repeats, ...)."""
    check_models(models)
    check_serving(sweep.get("engine", "hf"), sweep.get("dtype", "fp32"), batch_sizes)
    check_settings(settings)
    # caps of models not in this run are ignored: hydra merges dicts, so scale=paper cannot drop a key
    max_batch = {m: cap for m, cap in (max_batch or {}).items() if m in models}
    if any(not [b for b in batch_sizes if b <= cap] for cap in max_batch.values()):
        raise BadInput(f"max_batch: {max_batch} leaves a model without any of batch_sizes "
                       f"{list(batch_sizes)}")
    if not workloads:
        raise BadInput("workloads: give at least one workload")
    if sweep.get("engine") == "vllm":  # vLLM queues what exceeds max_num_seqs: let every batch run whole
        sweep["engine_options"] = {"max_num_seqs": max(batch_sizes), **sweep.get("engine_options", {})}
    try:
        spec = SweepSpec(models=list(models), batch_sizes=sorted(batch_sizes), workloads=workloads, **sweep)
    except ValueError as err:
        raise BadInput(str(err)) from None
    return Plan(spec, settings, max_batch)


def extra_cell(device: str) -> dict:
    """On a CPU the thread count changes what is measured, so it belongs in the cell's key."""
    import torch

    return {"torch_threads": torch.get_num_threads()} if device == "cpu" else {}


def plan_rows(plan: Plan, frame: pd.DataFrame, extra: dict) -> pd.DataFrame:
    """The store's rows that belong to this plan (a store may keep cells of an earlier, larger plan)."""
    if frame.empty:
        return frame
    s = plan.spec
    labels = {w.label for w in s.workloads}
    keep = (frame["engine"].eq(s.engine) & frame["dtype"].eq(s.dtype) & frame["workload"].isin(labels)
            & frame["model"].isin(s.models))
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


def run_benchmark(plan: Plan, store: ResultStore, result_dir: str | Path, hardware: dict, scale: str,
                  progress: bool = True) -> dict:
    """Measure every unfinished cell, then write <result_dir>/pareto.json (the figures read it)."""
    result_dir = Path(result_dir)
    start, load = time.monotonic(), [os.getloadavg()[0]]
    device = resolve_device(plan.spec.device).type
    extra = extra_cell(device)
    to_run = sum(not store.done({**cell_for(plan.spec, m, w, b, device), **extra})
                 for m in plan.spec.models for w in plan.spec.workloads for b in plan.batches(m))
    for model in plan.spec.models:
        sub = dataclasses.replace(plan.spec, models=[model], batch_sizes=plan.batches(model))
        run_sweep(sub, store, result_dir / "requests" / model, progress=progress, extra_cell=extra or None)
    conditions = measuring_run(result_dir / SUMMARY, to_run > 0, [load[0], os.getloadavg()[0]],
                               time.monotonic() - start)
    frame = plan_rows(plan, store.load(status=None), extra)
    groups = analyse(frame, plan.settings)
    for g in groups:
        p = g["pareto"]
        growth = "saturated" if p["saturated"] else "still growing at the largest batch"
        log.info("%s %s on %s: Pareto batch %d (%.0f tok/s, %s), memory %.2f%% of %.1f GiB measured, "
                 "%.2f%% from the model; energy: %s", g["model"], g["workload"], g["device_name"], p["batch"],
                 p["throughput_tok_s"], growth,
                 100 * (p["memory_share_measured"] or float("nan")), p["capacity_bytes"] / 2**30,
                 100 * p["memory_share_model"],
                 g["energy"]["missing_reason"] or f"{g['energy']['pareto_energy_per_token_j']:.4g} J/token")
        for key, r in g["roofline"].items():
            if "batch" in r:
                log.info("  roofline %s: Pareto batch %d needs %.1f%% of %.0f GiB (%s)", key, r["batch"],
                         100 * r["memory_share"], r["capacity_bytes"] / 2**30, "fits" if r["fits"] else
                         f"does NOT fit; at most {r['largest_batch_that_fits']} sequences do")
    summary = {"hardware": hardware, "scale": scale, **conditions,
               "settings": dataclasses.asdict(plan.settings),
               "sweep": {"engine": plan.spec.engine, "dtype": plan.spec.dtype, "repeats": plan.spec.repeats,
                         "batch_sizes": {m: plan.batches(m) for m in plan.spec.models},
                         "workloads": [w.label for w in plan.spec.workloads]},
               "failed_cells": int((frame["status"] != "ok").sum()) if not frame.empty else 0,
               "models": groups, "predicted": predict_only(plan.settings)}
    write_atomic(result_dir / SUMMARY, json.dumps(summary, indent=2, default=str) + "\n")
    return summary
