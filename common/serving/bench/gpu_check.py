"""`make gpu-check`: the serving core's measurements on one GPU, in about six minutes, without hydra.

OPT-1.3B's architecture with random fp16 weights on the hf engine: a batch sweep 1..256 at the
paper's offline lengths (161 prompt, 338 output tokens) with NVML energy, the kernel breakdown at two
batch sizes, the analytical model calibrated on the sweep, the engine's ratio over `model.generate`
and the harness's timing overhead. Everything goes to results/gpu/<device>/ (commit it). The GPU
nodes' python has torch and transformers but no hydra, so this driver imports no hydra; the result
store is the plain JSONL one.

    bash scripts/gpu_check.sh                 # on a GPU node
    python -m common.serving.bench.gpu_check --dry-run --out /tmp/x   # the same path, tiny, on CPU
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from pathlib import Path

import torch

from common.repo import REPO_ROOT
from common.results import ResultStore
from common.serving import roofline as rl
from common.serving.bench.generate_ratio import generate_ratio
from common.serving.bench.overhead import timing_overhead
from common.serving.bench.record import provenance, write_json
from common.serving.harness import SweepSpec, run_sweep, scaling_summary
from common.serving.hf_engine import HFEngine
from common.serving.kernels import kernel_breakdown
from common.serving.workloads import PAPER_OUTPUT_LEN, PAPER_PROMPT_LEN, WorkloadSpec

log = logging.getLogger("gpu_check")

FULL = {"model": "opt-1.3b", "dtype": "fp16", "device": "cuda",
        "batch_sizes": [1, 2, 4, 8, 16, 32, 64, 128, 256],
        "prompt_len": PAPER_PROMPT_LEN, "output_len": PAPER_OUTPUT_LEN, "repeats": 1, "warmup_tokens": 8,
        "breakdown_batches": [1, 64], "breakdown_steps": 32, "bench_batches": [1, 64], "bench_tokens": 64,
        "bench_repeats": 3}
DRY = {"model": "opt-tiny", "dtype": "fp32", "device": "cpu", "batch_sizes": [1, 2], "prompt_len": 8,
       "output_len": 4, "repeats": 1, "warmup_tokens": 2, "breakdown_batches": [1, 2], "breakdown_steps": 2,
       "bench_batches": [1], "bench_tokens": 4, "bench_repeats": 1}
# device name as torch reports it -> common.hardware spec key, for the uncalibrated roofline; first
# match wins. PCIe and NVL H100s have other memory systems and no sheet here: no uncalibrated roofline.
SPEC_BY_NAME = (("H100 80GB HBM3", "h100-sxm-80gb"), ("H100 PCIe", None), ("H100 NVL", None),
                ("H100", "h100-64gb"), ("H200", "h200"), ("A100-SXM4-80GB", "a100-80gb"),
                ("A100", "a100-40gb"), ("L4", "l4"))


def device_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def spec_for(device_name: str):
    from common.hardware import get_spec

    for needle, key in SPEC_BY_NAME:
        if needle.lower() in device_name.lower():
            return (key, get_spec(key)) if key else (None, None)
    return None, None


def roofline_report(frame, model: str, dtype: str, device_name: str) -> dict:
    """The analytical model against this sweep's decode phases (as calibrate_mindgap does for the paper's)."""
    shape = rl.model_shape(model)
    ok = frame[frame["status"] == "ok"].sort_values("batch_size")
    obs = [rl.decode_observation(r.batch_size, int(r.workload_prompt_mean),
                                 int(r.output_tokens / r.n_requests) - 1, r.decode_time_s)
           for r in ok.itertuples()]
    out = {"model": model, "dtype": dtype, "batches": [o.batch for o in obs]}
    if len(obs) >= 2:
        fitted = rl.fit_calibrated(obs, shape, dtype)
        mid_context = obs[0].contexts[len(obs[0].contexts) // 2]
        out["calibrated"] = {**fitted.to_dict(), "mape_pct": rl.throughput_mape(fitted, obs),
                             "b_half": fitted.half_ceiling_batch(mid_context)[1]}
    key, spec = spec_for(device_name)
    if spec is not None and obs:
        measured = [o.batch * o.steps / o.time_s for o in obs]
        predicted = [o.batch / rl.step_time(shape, o.batch, sum(o.contexts) / len(o.contexts), spec, dtype)
                     for o in obs]
        out["roofline"] = {"spec": key, "mape_pct": rl.mape(predicted, measured),
                           "predicted_tok_s": predicted, "measured_tok_s": measured}
    else:
        out["roofline"] = {"spec": None, "missing_reason": f"no datasheet spec matches {device_name!r}"}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true",
                   help="opt-tiny on the CPU: checks the path, measures nothing that matters")
    p.add_argument("--out", default=None, help="default: results/gpu/<device name>/")
    p.add_argument("--budget-s", type=float, default=330.0, help="skip the optional benchmarks past this")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    cfg = DRY if args.dry_run else FULL
    start = time.monotonic()
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        log.error("no CUDA device visible to this python (%s); use --dry-run to check the path on a CPU",
                  torch.__version__)
        return 2
    engine = HFEngine(cfg["model"], device=cfg["device"], dtype=cfg["dtype"])
    info = provenance(engine.device)
    device_name = info["hardware"]["device"]
    out = Path(args.out) if args.out else REPO_ROOT / "results" / "gpu" / device_slug(device_name)
    out.mkdir(parents=True, exist_ok=True)
    log.info("gpu_check on %s -> %s (%s)", device_name, out, "dry run" if args.dry_run else "full")
    write_json(out / "env.json", {**info, "config": cfg})

    spec = SweepSpec(models=[cfg["model"]], batch_sizes=cfg["batch_sizes"],
                     workloads=[WorkloadSpec("fixed", cfg["prompt_len"], cfg["output_len"])],
                     device=cfg["device"], dtype=cfg["dtype"], repeats=cfg["repeats"],
                     warmup_tokens=cfg["warmup_tokens"], monitor="auto")
    frame = run_sweep(spec, ResultStore(out / "sweep.jsonl"), out, engine_factory=lambda _: engine)
    summary = {"device": device_name, "dry_run": args.dry_run, "scaling": scaling_summary(frame),
               "failed_cells": int((frame["status"] != "ok").sum())}
    ok = frame[frame["status"] == "ok"]
    summary["energy"] = {int(r.batch_size): {"energy_per_output_token_j": r.energy_per_output_token_j,
                                             "steady_mean_power_w": r.steady_mean_power_w,
                                             "missing_reason": r.energy_missing_reason}
                         for r in ok.itertuples()}
    log.info("sweep done at %.0f s", time.monotonic() - start)

    breakdown = [kernel_breakdown(engine, b, cfg["prompt_len"], cfg["breakdown_steps"])
                 for b in cfg["breakdown_batches"]]
    write_json(out / "breakdown.json", {"rows": breakdown, **info})
    summary["breakdown"] = {r["batch_size"]: {k: r[k] for k in r if k.endswith("_share")} for r in breakdown}
    log.info("breakdown done at %.0f s", time.monotonic() - start)

    roof = roofline_report(frame, cfg["model"], cfg["dtype"], device_name)
    write_json(out / "roofline.json", roof)
    summary["roofline_mape_pct"] = {"calibrated": roof.get("calibrated", {}).get("mape_pct"),
                                    "roofline": roof["roofline"].get("mape_pct")}

    bench = {"generate_ratio": [], "overhead": []}
    if time.monotonic() - start < args.budget_s:
        from common.gpu_metrics import Monitor

        for b in cfg["bench_batches"]:
            bench["generate_ratio"].append(generate_ratio(engine, b, cfg["prompt_len"], cfg["bench_tokens"],
                                                          cfg["bench_repeats"]))
        with Monitor("auto") as monitor:
            for b in cfg["bench_batches"]:
                bench["overhead"].append(timing_overhead(engine, monitor, b, cfg["prompt_len"],
                                                         cfg["bench_tokens"], cfg["bench_repeats"]))
    else:
        bench["skipped"] = f"over the {args.budget_s:.0f} s budget after the sweep"
    write_json(out / "bench.json", {**bench, **info})
    summary["generate_decode_ratio"] = {r["batch_size"]: r["decode_ratio"] for r in bench["generate_ratio"]}
    summary["overhead_pct"] = {r["batch_size"]: r["overhead_pct_median"] for r in bench["overhead"]}
    summary["elapsed_s"] = time.monotonic() - start
    write_json(out / "summary.json", summary)
    log.info("gpu_check done in %.0f s: %s", summary["elapsed_s"], out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
