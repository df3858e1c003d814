"""From a benchmark's result rows to each model's Pareto point, measured and predicted.

Per (model, workload): the throughput-latency and throughput-energy frontiers over batch sizes, the
saturation batch B* (pareto.saturation_point), the memory B* needed as a share of the device (the
measured peak, and weights + KV cache from the roofline arithmetic), and the same prediction on spec-
sheet devices (A100, H100) through common.serving.roofline, so one reads where each model's Pareto
point falls on each device and whether it fits. Plain python, no hydra: gpu_bench runs it too, and
`AnalysisConfig` is the part of both commands' schemas that configures it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from common.hardware.specs import DTYPES as SPEC_DTYPES
from common.hardware.specs import SPECS
from common.schema import spec
from common.serving import roofline as rl
from papers.slm_energy.pareto import (
    batch_grid,
    cheapest_index,
    largest_batch_that_fits,
    pareto_mask,
    saturation_point,
)

if TYPE_CHECKING:
    import pandas as pd

THROUGHPUT = "output_throughput_tok_s"
ENERGY = "energy_per_output_token_j"
LATENCY_METRICS = ("e2e_ms_mean", "e2e_ms_p99", "ttft_ms_mean", "itl_ms_mean", "tpot_ms_mean")
POINT_COLUMNS = (
    "batch_size",
    THROUGHPUT,
    "ttft_ms_mean",
    "itl_ms_mean",
    "itl_ms_p99",
    "tpot_ms_mean",
    "e2e_ms_mean",
    "e2e_ms_p99",
    ENERGY,
    "steady_energy_per_token_j",
    "mean_power_w",
    "steady_mean_power_w",
    "peak_memory_bytes",
    "kv_cache_bytes",
    "utilization_pct",
    "output_throughput_cv",
)


@dataclass(frozen=True)
class Settings:
    tolerance: float  # saturation: larger batches gain at most this fraction of throughput
    latency_metric: str  # the frontier's latency column
    roofline_devices: tuple[str, ...]  # common.hardware.SPECS keys
    roofline_dtype: str
    memory_utilization: float  # share of a device's memory a serving engine fills (vLLM: 0.9)
    max_batch: int  # predicted curves run over powers of two up to this
    predict_models: tuple[str, ...] = ()  # predicted on the spec sheets only, not run
    predict_prompt_len: int = 161
    predict_output_len: int = 338


@dataclass
class RooflineConfig:
    """The analytical prediction of each model's Pareto point on devices we do not have here."""

    devices: list[str] = spec(nonempty=True, choices=tuple(SPECS))  # spec sheets (common.hardware)
    dtype: str = spec(choices=SPEC_DTYPES)  # the serving precision on those devices
    memory_utilization: float = spec(gt=0, le=1)  # share of device memory a serving engine may fill
    max_batch: int = spec(ge=1)  # the predicted curve's batch grid: powers of two up to this
    models: list[str] = spec(factory=list, free="predicted only (not run); checked by name")
    prompt_len: int = spec(ge=1)  # the predicted-only models' lengths
    output_len: int = spec(ge=1)


@dataclass
class AnalysisConfig:
    """The analysis keys of a benchmark's schema (papers.slm_energy.benchmark and .gpu_bench)."""

    tolerance: float = spec(ge=0)  # saturation: larger batches gain at most this fraction of throughput
    latency_metric: str = spec(choices=LATENCY_METRICS)  # the frontier's latency column
    roofline: RooflineConfig = field(default_factory=RooflineConfig)


def check_analysis(cfg) -> None:
    """What the analysis keys' rules cannot say: the predicted-only models exist."""
    if cfg.roofline.models:
        from common.serving.config import check_models

        check_models(cfg.roofline.models, "roofline.models")


def settings_from_config(cfg) -> Settings:
    """The analysis settings of a (validated) config holding the AnalysisConfig keys."""
    r = cfg.roofline
    return Settings(
        tolerance=cfg.tolerance,
        latency_metric=cfg.latency_metric,
        roofline_devices=tuple(r.devices),
        roofline_dtype=r.dtype,
        memory_utilization=r.memory_utilization,
        max_batch=r.max_batch,
        predict_models=tuple(r.models),
        predict_prompt_len=r.prompt_len,
        predict_output_len=r.output_len,
    )


def this_device_spec(device: str, device_name: str, profile_dir: str | Path | None):
    """(key, DeviceSpec) for the roofline of the measured device, or (None, why not): a GPU's sheet by
    its name, or this host's measured profile in `profile_dir` (common.hardware.probe)."""
    from common.hardware import get_spec, spec_for_device

    if device == "cuda":
        key, sheet = spec_for_device(device_name)
        return (key, sheet) if sheet is not None else (None, f"no spec sheet matches {device_name!r}")
    try:
        return "local", get_spec("local", profile_dir)
    except FileNotFoundError as err:
        return None, str(err)


def _none_if_nan(v):
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    return v.item() if hasattr(v, "item") else v


def kv_bytes(model: str, dtype: str) -> int:
    return rl.kv_bytes_per_token(rl.model_shape(model), dtype)


def weights_bytes(n_params: int, dtype: str) -> int:
    """Every parameter once at the serving precision (what a device must hold before any KV)."""
    return int(n_params) * rl.DTYPE_BYTES[dtype]


def predict_pareto(
    model: str, spec, dtype: str, prompt_len: float, output_len: float, settings: Settings
) -> dict:
    """The roofline model's throughput curve on `spec`, its saturation batch and that batch's memory.

    Decode throughput T(B) = B / step time at the mean decode context (prompt + output / 2); memory
    at B = weights + B (prompt + output) KV bytes per token (activations left out: they are small
    next to the KV cache at these batches). fits: B* fits in memory_utilization of the device.
    """
    if dtype not in spec.peak_flops:
        return {"device": spec.name, "missing_reason": f"{spec.name} has no {dtype} peak in its spec"}
    shape = rl.model_shape(model)
    context = prompt_len + output_len / 2
    per_sequence = (prompt_len + output_len) * rl.kv_bytes_per_token(shape, dtype)
    weights = weights_bytes(shape.n_params, dtype)
    grid = batch_grid(settings.max_batch)
    steps = [rl.step_time(shape, b, context, spec, dtype) for b in grid]
    throughput = [b / t for b, t in zip(grid, steps)]
    star = saturation_point(grid, throughput, steps, settings.tolerance)
    b_star = star["batch"]
    memory = weights + b_star * per_sequence
    usable = spec.mem_bytes * settings.memory_utilization
    regimes = rl.regimes(shape, b_star, context, spec, dtype)
    ceiling, b_half = rl.half_ceiling_batch(shape, context, spec, dtype)
    fit = largest_batch_that_fits(usable, weights, per_sequence)
    at_fit = fit / rl.step_time(shape, fit, context, spec, dtype) if fit else 0.0
    return {
        "device": spec.name,
        "dtype": dtype,
        "capacity_bytes": int(spec.mem_bytes),
        "batch": b_star,
        "throughput_tok_s": star["throughput"],
        "saturated": star["saturated"],
        "ceiling_tok_s": ceiling,
        "half_ceiling_batch": b_half,
        "memory_bytes": memory,
        "memory_share": memory / spec.mem_bytes,
        "fits": memory <= usable,
        "largest_batch_that_fits": fit,
        "throughput_at_largest_fit_tok_s": at_fit,
        "weights_bytes": weights,
        "kv_bytes_per_sequence": per_sequence,
        "bound": {k: regimes[k]["bound"] for k in ("dense", "attention", "step")},
        "curve": {"batch": grid, "throughput_tok_s": throughput, "step_s": steps},
    }


def _points(g: pd.DataFrame, latency: str) -> list[dict]:
    cols = [c for c in POINT_COLUMNS if c in g]
    points = [{c: _none_if_nan(r[c]) for c in cols} for _, r in g.iterrows()]
    on_latency = pareto_mask(g[THROUGHPUT].tolist(), g[latency].tolist())
    energy = g[ENERGY].tolist() if ENERGY in g else [None] * len(g)
    on_energy = pareto_mask(g[THROUGHPUT].tolist(), energy)
    for p, a, b in zip(points, on_latency, on_energy):
        p["on_latency_frontier"], p["on_energy_frontier"] = bool(a), bool(b)
    return points


def analyse_group(g: pd.DataFrame, settings: Settings, capacity: tuple[int, str], this_spec) -> dict:
    """One model on one workload: its points, frontiers, Pareto batch, memory and predictions."""
    g = g.sort_values("batch_size").reset_index(drop=True)
    first = g.iloc[0]
    latency = settings.latency_metric
    star = saturation_point(
        g["batch_size"].tolist(), g[THROUGHPUT].tolist(), g[latency].tolist(), settings.tolerance
    )
    row = g.iloc[star["index"]]
    model, precision = first["model"], first["precision"]
    prompt, output = float(first["workload_prompt_mean"]), float(first["workload_output_mean"])
    cap_bytes, cap_source = capacity
    weights = weights_bytes(int(first["n_params"]), precision)
    kv_model = star["batch"] * (prompt + output) * kv_bytes(model, precision)
    peak = _none_if_nan(row.get("peak_memory_bytes"))
    energy = g[ENERGY].tolist() if ENERGY in g else []
    cheapest = cheapest_index(energy) if energy else None
    missing = next((r for r in g.get("energy_missing_reason", []) if isinstance(r, str)), None)
    out = {
        "model": model,
        "workload": first["workload"],
        "engine": first["engine"],
        "device": first["device"],
        "device_name": first["device_name"],
        "precision": precision,
        "n_params": int(first["n_params"]),
        "weights": first.get("weights"),
        "prompt_len_mean": prompt,
        "output_len_mean": output,
        "latency_metric": latency,
        "points": _points(g, latency),
        "pareto": {
            "batch": star["batch"],
            "throughput_tok_s": star["throughput"],
            "saturated": star["saturated"],
            "frontier_batches": star["frontier_batches"],
            "largest_batch": int(g["batch_size"].max()),
            "latency_ms": float(row[latency]),
            "tolerance": settings.tolerance,
            "peak_memory_bytes": peak,
            "kv_cache_bytes": _none_if_nan(row.get("kv_cache_bytes")),
            "capacity_bytes": cap_bytes,
            "capacity_source": cap_source,
            "memory_share_measured": peak / cap_bytes if peak else None,
            "memory_bytes_model": weights + kv_model,
            "memory_share_model": (weights + kv_model) / cap_bytes,
            "peak_memory_method": "peak allocated (CUDA)"
            if first["device"] == "cuda"
            else "process resident-set high-water mark (includes the Python and torch runtime)",
        },
        "energy": {
            "available": cheapest is not None,
            "missing_reason": None if cheapest is not None else (missing or "no energy reading"),
            "source": _none_if_nan(row.get("energy_source")),
            "min_energy_batch": int(g["batch_size"].iloc[cheapest]) if cheapest is not None else None,
            "min_energy_per_token_j": float(energy[cheapest]) if cheapest is not None else None,
            "pareto_energy_per_token_j": _none_if_nan(row.get(ENERGY)),
            "pareto_steady_energy_per_token_j": _none_if_nan(row.get("steady_energy_per_token_j")),
            "pareto_mean_power_w": _none_if_nan(row.get("mean_power_w")),
            "pareto_steady_mean_power_w": _none_if_nan(row.get("steady_mean_power_w")),
        },
    }
    key, spec = this_spec
    if key is None:
        out["roofline_this_device"] = {"missing_reason": spec}
    else:
        out["roofline_this_device"] = {
            "spec": key,
            **predict_pareto(model, spec, precision, prompt, output, settings),
        }
    from common.hardware import get_spec

    dtype = settings.roofline_dtype
    out["roofline"] = {
        k: predict_pareto(model, get_spec(k), dtype, prompt, output, settings)
        for k in settings.roofline_devices
    }
    return out


def predict_only(settings: Settings) -> list[dict]:
    """The roofline prediction for models that are not run (the paper's OPT family on this CPU)."""
    from common.hardware import get_spec

    p, o = settings.predict_prompt_len, settings.predict_output_len
    return [
        {
            "model": m,
            "n_params": rl.model_shape(m).n_params,
            "prompt_len": p,
            "output_len": o,
            "roofline": {
                k: predict_pareto(m, get_spec(k), settings.roofline_dtype, p, o, settings)
                for k in settings.roofline_devices
            },
        }
        for m in settings.predict_models
    ]


def analyse(frame: pd.DataFrame, settings: Settings, profile_dir: str | Path | None = None) -> list[dict]:
    """Every (model, workload) with at least one finished cell, in the sweep's order; the batch sizes
    whose cells failed (out of memory, above all) are listed with their errors. profile_dir: where this
    host's measured profile is (the roofline of a CPU run's own device)."""
    if frame.empty:
        return []
    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return []
    failed = frame[frame["status"] != "ok"]
    from common.hardware import device_memory

    device = ok["device"].iloc[0]
    memory = device_memory(device)
    capacity = (memory.total_bytes, memory.source)
    this_spec = this_device_spec(device, ok["device_name"].iloc[0], profile_dir)
    out = []
    for (model, workload), g in ok.groupby(["model", "workload"], sort=False):
        summary = analyse_group(g, settings, capacity, this_spec)
        bad = failed[(failed["model"] == model) & (failed["workload"] == workload)]
        summary["failed"] = [{"batch_size": int(r.batch_size), "error": r.error} for r in bad.itertuples()]
        out.append(summary)
    return out
