"""Where decode time goes: attention, matmul, other kernels and CPU-side gaps (the paper's Fig. 5 classes).

torch.profiler runs over the decode steps only (the engine's DECODE_START / RUN_END hooks switch it on
and off). On CUDA the classes are GPU kernel times, classified by kernel name, and the gap is the decode
wall time during which no kernel ran (the GPU waits for the host). On CPU the classes are the self
times of aten ops, an op counting as attention or matmul when it or an op above it is one (the matmul
inside eager attention is attention), and the gap is the wall time outside any op (Python, dispatch).
`summarise_ncu_csv` reads the Nsight Compute export of scripts/ncu_decode.sh into the same classes.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from common.serving.engine import DECODE_START, RUN_END

CLASSES = ("attention", "matmul", "other")
_ATTENTION = re.compile(r"scaled_dot_product|attention|attn|flash|fmha|softmax|sdpa", re.IGNORECASE)
# aten matmul ops on CPU; cuBLAS / CUTLASS kernel names on CUDA (nvjet: cuBLAS 12.8+ Hopper kernels)
_MATMUL_OP = re.compile(r"^aten::(mm|addmm|bmm|baddbmm|matmul|linear|addmv|mv|dot)$")
_MATMUL_KERNEL = re.compile(r"gemm|gemv|cutlass|xmma|cublas|nvjet|splitkreduce|matmul", re.IGNORECASE)


def classify_kernel(name: str) -> str:
    """A GPU kernel's class from its name; attention is matched first, as its fused kernels multiply too."""
    if _ATTENTION.search(name):
        return "attention"
    return "matmul" if _MATMUL_KERNEL.search(name) else "other"


def classify_op(chain: list[str]) -> str:
    """chain: the op's name, then its parents' names up to the top-level op."""
    if any(_ATTENTION.search(n) for n in chain):
        return "attention"
    return "matmul" if any(_MATMUL_OP.match(n) for n in chain) else "other"


def _chain(event) -> list[str]:
    names = []
    while event is not None:
        names.append(event.name)
        event = event.cpu_parent
    return names


def _busy_union_us(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by possibly overlapping intervals (kernels on several streams)."""
    total, end = 0.0, -np.inf
    for start, stop in sorted(intervals):
        if start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def breakdown_from_events(events, decode_wall_s: float, cuda: bool) -> dict:
    """Seconds per class and the gap, from a profiler's FunctionEvents."""
    seconds = defaultdict(float)
    if cuda:
        kernels = [e for e in events if e.device_type.name == "CUDA"]
        for k in kernels:
            seconds[classify_kernel(k.name)] += k.time_range.elapsed_us() / 1e6
        busy = _busy_union_us([(k.time_range.start, k.time_range.end) for k in kernels]) / 1e6
    else:
        ops = [e for e in events if e.device_type.name == "CPU" and e.name.startswith("aten::")]
        for op in ops:
            seconds[classify_op(_chain(op))] += op.self_cpu_time_total / 1e6
        busy = sum(seconds.values())
    out = {f"{c}_s": seconds[c] for c in CLASSES}
    out["gap_s"] = max(decode_wall_s - busy, 0.0)
    total = sum(out.values())
    out.update({f"{k[:-2]}_share": v / total for k, v in list(out.items())})
    out["decode_wall_s"] = decode_wall_s
    return out


def kernel_breakdown(
    engine, batch_size: int, prompt_len: int = 161, decode_steps: int = 32, seed: int = 0
) -> dict:
    """Profile `decode_steps` decode steps of one static batch on an HFEngine (paper: 161-token prompts)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = engine.device.type == "cuda"
    vocab = engine.lm.config.vocab_size
    prompts = np.random.default_rng(seed).integers(4, vocab, (batch_size, prompt_len)).tolist()
    engine.run(prompts, 2)  # warm-up: allocator, kernel selection
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    prof = profile(activities=activities)

    def hook(phase: str) -> None:
        if phase == DECODE_START:
            prof.start()
        elif phase == RUN_END:
            prof.stop()

    result = engine.run(prompts, decode_steps + 1, hook=hook)
    if cuda:
        torch.cuda.synchronize()
    out = breakdown_from_events(prof.events(), result.decode_time_s, cuda)
    out.update(
        {
            "batch_size": batch_size,
            "prompt_len": prompt_len,
            "decode_steps": decode_steps,
            "device": engine.device.type,
            "step_ms": 1e3 * result.decode_time_s / decode_steps,
            "profiler_overhead_note": "step times include the profiler's own overhead",
        }
    )
    return out


# ---- Nsight Compute -------------------------------------------------------------------------------------
NCU_METRICS = {
    "dram__throughput.avg.pct_of_peak_sustained_elapsed": "dram_throughput_pct",
    "sm__warps_active.avg.pct_of_peak_sustained_active": "achieved_occupancy_pct",
    "gpu__time_duration.sum": "duration",
}


def summarise_ncu_csv(path: str | Path) -> dict:
    """Per kernel class: kernel count, time-weighted DRAM throughput and achieved occupancy (% of peak),
    from `ncu --csv --page raw` or the default `--page details` export (one row per kernel x metric)."""
    path = Path(path)
    lines = path.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None:
        raise ValueError(f'{path}: no ncu CSV header (a line starting with "ID")')
    kernels: dict[str, dict] = defaultdict(dict)
    for row in csv.DictReader(lines[start:]):
        metric = NCU_METRICS.get(row.get("Metric Name", ""))
        if metric is None:
            continue
        try:
            value = float(row["Metric Value"].replace(",", ""))
        except ValueError:  # "n/a" where a metric does not apply to a kernel
            continue
        if metric == "duration" and row.get("Metric Unit") in ("usecond", "us"):
            value *= 1e3  # ns
        elif metric == "duration" and row.get("Metric Unit") in ("msecond", "ms"):
            value *= 1e6
        kernels[row["ID"]].update({"name": row["Kernel Name"], metric: value})
    summary = {}
    for cls in CLASSES:
        ks = [k for k in kernels.values() if classify_kernel(k["name"]) == cls]
        if not ks:
            continue
        weights = np.array([k.get("duration", 1.0) for k in ks])
        timed = all("duration" in k for k in ks)
        summary[cls] = {"kernels": len(ks), "time_ns": float(weights.sum()) if timed else None}
        for metric in ("dram_throughput_pct", "achieved_occupancy_pct"):
            values = np.array([k.get(metric, np.nan) for k in ks])
            ok = ~np.isnan(values)
            summary[cls][metric] = float(np.average(values[ok], weights=weights[ok])) if ok.any() else None
    return summary
