"""`make gpu-check`: the serving core's measurements on one GPU, in about six minutes; runs where hydra is
absent (the GPU nodes' python has torch and transformers but neither hydra nor omegaconf, so the same
config files are read by common.plain_config there).

plan=full: OPT-1.3B's architecture with random fp16 weights on the hf engine, a batch sweep 1..256 at
the paper's offline lengths (161 prompt, 338 output tokens) with NVML energy, the kernel breakdown at two
batch sizes, the analytical model calibrated on the sweep, the engine's ratio over `model.generate` and
the harness's timing overhead. plan=small: the same path with a tiny model on a CPU. Everything goes to
<out> (${paths.results_dir}/gpu/<device> unless given; commit it). The plans are
conf/common/serving/bench/plan/{full,small}.yaml.

    bash scripts/gpu_check.sh                                          # on a GPU node (plan=full)
    python -m common.serving.bench.gpu_check plan=small out=/tmp/x     # the same path, tiny, on a CPU
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from common.app import entrypoint
from common.errors import BadInput
from common.schema import RunConfig, spec
from common.serving.config import WorkloadConfig, check_models, workload_spec
from common.serving.models import DTYPES

log = logging.getLogger("gpu_check")


@dataclass
class GpuCheckPlan:
    """What the GPU check measures (conf/common/serving/bench/plan/<name>.yaml)."""

    name: str = spec(choices=("small", "full"))  # conf/plan: which plan this is
    model: str = spec(free="a built-in architecture or a checkpoint; checked by name")
    device: str = spec(choices=("cpu", "cuda"))
    dtype: str = spec(choices=DTYPES)
    batch_sizes: list[int] = spec(nonempty=True, ge=1)  # the sweep
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)  # fixed lengths
    repeats: int = spec(ge=1)
    warmup_tokens: Optional[int] = spec(None, ge=1)  # new tokens per warm-up run; None: the workload's own
    breakdown_batches: list[int] = spec(nonempty=True, ge=1)  # the kernel breakdown's batch sizes
    breakdown_steps: int = spec(ge=1)  # decode steps profiled at each
    bench_batches: list[int] = spec(nonempty=True, ge=1)  # generate ratio and timing overhead
    bench_tokens: int = spec(ge=2)  # new tokens per benchmark run (one prefill, the rest decode)
    bench_repeats: int = spec(ge=1)


@dataclass
class GpuCheckConfig(RunConfig):
    """conf/common/serving/bench/gpu_check.yaml: a plan and where its results go."""

    plan: GpuCheckPlan = field(default_factory=GpuCheckPlan)
    out: Optional[str] = spec(None, free="a directory; None: ${paths.results_dir}/gpu/<device>")
    budget_s: float = spec(gt=0)  # the optional benchmarks are skipped past this many seconds

    def check(self) -> None:
        """The plan's model, fixed workload and, for cuda, a visible GPU; BadInput before anything loads."""
        check_models([self.plan.model], "plan.model")
        workload_spec(self.plan.workload, "plan.workload")
        if self.plan.workload.kind != "fixed":
            raise BadInput(
                f"plan.workload.kind: the GPU check serves fixed lengths, not {self.plan.workload.kind}"
            )
        if self.plan.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise BadInput(
                    f"plan.device: cuda, but no CUDA device is visible to this python (torch "
                    f"{torch.__version__}); plan=small checks the path on a CPU"
                )


def device_slug(name: str) -> str:
    """A device name as a folder name: results/gpu/<slug>/."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def roofline_report(frame, model: str, dtype: str, device_name: str) -> dict:
    """The roofline and the step model (common.serving.step_model, fitted here by its one routine) against
    this sweep's decode phases, as papers.batching.calibrate does for the authors' H100 runs."""
    from common.hardware import spec_for_device
    from common.serving import roofline as rl
    from common.serving.step_model import decode_observations, errors, fit_step_model

    shape = rl.model_shape(model)
    ok = frame[frame["status"] == "ok"].sort_values("batch_size")
    obs = [
        decode_observations(
            shape,
            r.batch_size,
            int(r.workload_prompt_mean),
            int(r.output_tokens / r.n_requests) - 1,
            r.decode_time_s,
        )
        for r in ok.itertuples()
        if int(r.output_tokens / r.n_requests) > 1 and r.decode_time_s > 0
    ]
    out = {"model": model, "dtype": dtype, "batches": [o.batch for o in obs]}
    key, sheet = spec_for_device(device_name)
    if len(obs) >= 2:
        device = sheet if sheet is not None and dtype in sheet.peak_flops else None
        fitted = fit_step_model(obs, device, dtype)
        (err,) = errors(fitted, obs).values()
        out["calibrated"] = {
            **fitted.to_dict(),
            "mape_pct": err["throughput_mape_pct"],
            "step_mape_pct": err["step_mape_pct"],
            "b_half": fitted.half_ceiling_batch(shape, obs[len(obs) // 2].context)[1],
        }
    if sheet is not None and obs:
        measured = [o.batch / o.time_s for o in obs]
        predicted = [o.batch / rl.step_time(shape, o.batch, o.context, sheet, dtype) for o in obs]
        out["roofline"] = {
            "spec": key,
            "mape_pct": rl.mape(predicted, measured),
            "predicted_tok_s": predicted,
            "measured_tok_s": measured,
        }
    else:
        out["roofline"] = {"spec": None, "missing_reason": f"no datasheet spec matches {device_name!r}"}
    return out


@entrypoint("common/serving/bench/gpu_check", schema=GpuCheckConfig, plain=True)
def main(cfg, run):
    """Run the plan's sweep, breakdown, roofline fit and benchmarks into one folder and return its path.

    The benchmarks are skipped once budget_s has passed after the sweep; summary.json has the headlines.
    """
    from common.results import ResultStore
    from common.serving.bench.generate_ratio import generate_ratio
    from common.serving.bench.overhead import timing_overhead
    from common.serving.bench.record import provenance, to_plain, write_json
    from common.serving.harness import SweepSpec, run_sweep, scaling_summary
    from common.serving.hf_engine import HFEngine
    from common.serving.kernels import kernel_breakdown

    plan = cfg.plan
    start = time.monotonic()
    workload = workload_spec(plan.workload, "plan.workload")
    engine = HFEngine(plan.model, device=plan.device, dtype=plan.dtype)
    info = provenance(engine.device)
    device_name = info["hardware"]["device"]
    out = Path(cfg.out) if cfg.out else Path(cfg.paths.results_dir) / "gpu" / device_slug(device_name)
    out.mkdir(parents=True, exist_ok=True)
    log.info("gpu_check on %s -> %s (plan=%s)", device_name, out, plan.name)
    write_json(out / "env.json", {**info, "config": to_plain(cfg), "run_dir": str(run.dir)})

    spec_ = SweepSpec(
        models=[plan.model],
        batch_sizes=list(plan.batch_sizes),
        workloads=[workload],
        device=plan.device,
        dtype=plan.dtype,
        repeats=plan.repeats,
        warmup_tokens=plan.warmup_tokens,
        monitor="auto",
    )
    frame = run_sweep(spec_, ResultStore(out / "sweep.jsonl"), out, engine_factory=lambda _: engine)
    summary = {
        "device": device_name,
        "plan": plan.name,
        "scaling": scaling_summary(frame),
        "failed_cells": int((frame["status"] != "ok").sum()),
    }
    ok = frame[frame["status"] == "ok"]
    summary["energy"] = {
        int(r.batch_size): {
            "energy_per_output_token_j": r.energy_per_output_token_j,
            "steady_mean_power_w": r.steady_mean_power_w,
            "missing_reason": r.energy_missing_reason,
        }
        for r in ok.itertuples()
    }
    log.info("sweep done at %.0f s", time.monotonic() - start)

    prompt_len = workload.prompt_len
    breakdown = [
        kernel_breakdown(engine, b, prompt_len, plan.breakdown_steps) for b in plan.breakdown_batches
    ]
    write_json(out / "breakdown.json", {"rows": breakdown, **info})
    summary["breakdown"] = {r["batch_size"]: {k: r[k] for k in r if k.endswith("_share")} for r in breakdown}
    log.info("breakdown done at %.0f s", time.monotonic() - start)

    roof = roofline_report(frame, plan.model, plan.dtype, device_name)
    write_json(out / "roofline.json", roof)
    summary["roofline_mape_pct"] = {
        "calibrated": roof.get("calibrated", {}).get("mape_pct"),
        "roofline": roof["roofline"].get("mape_pct"),
    }

    bench = {"generate_ratio": [], "overhead": []}
    if time.monotonic() - start < cfg.budget_s:
        from common.gpu_metrics import Monitor

        for b in plan.bench_batches:
            bench["generate_ratio"].append(
                generate_ratio(engine, b, prompt_len, plan.bench_tokens, plan.bench_repeats)
            )
        with Monitor("auto") as monitor:
            for b in plan.bench_batches:
                bench["overhead"].append(
                    timing_overhead(engine, monitor, b, prompt_len, plan.bench_tokens, plan.bench_repeats)
                )
    else:
        bench["skipped"] = f"over the {cfg.budget_s:.0f} s budget after the sweep"
    write_json(out / "bench.json", {**bench, **info})
    summary["generate_decode_ratio"] = {r["batch_size"]: r["decode_ratio"] for r in bench["generate_ratio"]}
    summary["overhead_pct"] = {r["batch_size"]: r["overhead_pct_median"] for r in bench["overhead"]}
    summary["elapsed_s"] = time.monotonic() - start
    write_json(out / "summary.json", summary)
    log.info("gpu_check done in %.0f s: %s", summary["elapsed_s"], out)
    return str(out)


if __name__ == "__main__":
    main()
