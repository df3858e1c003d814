"""Does the roofline's regime (memory- or compute-bound) match what a measured sweep shows?

Measured regime between neighbouring batch sizes, from the median decode-step time t(B): its
elasticity e = dlog t / dlog B is ~0 while a step costs the same whatever the batch (it is paid for by
bytes read once per step: memory-bound, or fixed overheads) and ~1 once each sequence adds its own
cost (compute-bound); e >= 0.5 reads as compute-bound. Predicted regime: the same elasticity of the
roofline step time on the device's spec or measured profile ("local": `python -m
common.hardware.probe`), and the per-class bounds at each batch size.

    python -m common.serving.bench.regime_check [results=<a sweep's results.jsonl>] [spec=h100-64gb]
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from common import schema
from common.app import entrypoint
from common.errors import BadInput

log = logging.getLogger(__name__)
ELASTICITY_SPLIT = 0.5


@dataclass
class RegimeCheckConfig(schema.RunConfig):
    """conf/common/serving/bench/regime_check.yaml."""

    results: str = schema.spec(free="a serving sweep's results.jsonl; checked to exist")
    spec: str = schema.spec(free="a common.hardware spec sheet, or local (this host's probe); checked")
    profile_dir: str = schema.spec(free="where `python -m common.hardware.probe` saved this host's profile")
    out: str = schema.spec(free="the JSON file the checks go to")


def _regime(elasticity: float) -> str:
    return "compute" if elasticity >= ELASTICITY_SPLIT else "memory"


def dense_crossover_batch(shape, spec, dtype: str) -> float:
    """Batch at which the dense layers' intensity reaches the ridge point (bisection; it grows with B)."""
    from common.serving import roofline as rl

    ridge = spec.peak_flops[dtype] / spec.mem_bandwidth
    lo, hi = 1e-3, 1e7
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        dense = rl.step_costs(shape, mid, 1.0, spec, dtype)["dense"]
        lo, hi = (mid, hi) if dense.intensity < ridge else (lo, mid)
    return hi


def check(frame, spec, spec_name: str) -> list[dict]:
    """Per (model, workload, dtype) of a sweep's rows: measured vs roofline regime on `spec`.

    Between neighbouring batch sizes by elasticity, and per batch size the step times and each class's bound.
    """
    from common.serving import roofline as rl

    out = []
    for (model, workload, dtype), g in frame.groupby(["model", "workload", "dtype"], sort=False):
        g = g.sort_values("batch_size")
        shape = rl.model_shape(model)
        context = float(
            g["workload_prompt_mean"].iloc[0] + g["output_tokens"].iloc[0] / g["n_requests"].iloc[0] / 2
        )
        batches = [int(b) for b in g["batch_size"]]
        measured = [float(t) / 1e3 for t in g["step_ms_median"]]
        predicted = [rl.step_time(shape, b, context, spec, dtype) for b in batches]
        intervals = []
        for i in range(len(batches) - 1):
            span = math.log(batches[i + 1] / batches[i])
            e_meas = math.log(measured[i + 1] / measured[i]) / span
            e_pred = math.log(predicted[i + 1] / predicted[i]) / span
            intervals.append(
                {
                    "from_batch": batches[i],
                    "to_batch": batches[i + 1],
                    "measured_elasticity": e_meas,
                    "predicted_elasticity": e_pred,
                    "measured": _regime(e_meas),
                    "predicted": _regime(e_pred),
                    "agree": _regime(e_meas) == _regime(e_pred),
                }
            )
        per_batch = []
        loads = g["load_avg_1m"].tolist() if "load_avg_1m" in g else [None] * len(batches)
        for b, m, p, load in zip(batches, measured, predicted, loads):
            bounds = {k: v["bound"] for k, v in rl.regimes(shape, b, context, spec, dtype).items()}
            per_batch.append(
                {
                    "batch": b,
                    "measured_step_ms": 1e3 * m,
                    "roofline_step_ms": 1e3 * p,
                    "measured_over_roofline": m / p,
                    "bounds": bounds,
                    "load_avg_1m": load,
                }
            )
        out.append(
            {
                "model": model,
                "workload": workload,
                "dtype": dtype,
                "device_spec": spec_name,
                "device_name": g["device_name"].iloc[0],
                "context": context,
                "ridge_flop_per_byte": spec.peak_flops[dtype] / spec.mem_bandwidth,
                "dense_crossover_batch": dense_crossover_batch(shape, spec, dtype),
                "intervals": intervals,
                "per_batch": per_batch,
                "agreement": sum(i["agree"] for i in intervals) / len(intervals) if intervals else None,
            }
        )
    return out


@entrypoint("common/serving/bench/regime_check", schema=RegimeCheckConfig)
def main(cfg, run):
    """Compare a finished sweep's regimes with the roofline's on `spec` and write the checks to `out`.

    BadInput for a missing or empty results file or an unknown spec.
    """
    from common.hardware import get_spec
    from common.results import ResultStore
    from common.serving.bench.record import write_json

    if not Path(cfg.results).is_file():
        raise BadInput(f"results: {cfg.results} does not exist; run `python -m papers.batching.sweep` first")
    frame = ResultStore(cfg.results).load()
    if frame.empty:
        raise BadInput(f"results: {cfg.results} holds no finished cell")
    try:
        sheet = get_spec(cfg.spec, cfg.profile_dir)
    except (KeyError, FileNotFoundError) as err:
        raise BadInput(f"spec: {err}") from None
    rows = check(frame, sheet, cfg.spec)
    for r in rows:
        log.info(
            "%s (%s) on %s vs spec %s: dense layers turn compute-bound at B~%.0f (ridge %.1f FLOP/B)",
            r["model"],
            r["dtype"],
            r["device_name"],
            r["device_spec"],
            r["dense_crossover_batch"],
            r["ridge_flop_per_byte"],
        )
        for i in r["intervals"]:
            log.info(
                "  B %4d -> %4d: measured e=%.2f (%s), roofline e=%.2f (%s) %s",
                i["from_batch"],
                i["to_batch"],
                i["measured_elasticity"],
                i["measured"],
                i["predicted_elasticity"],
                i["predicted"],
                "agree" if i["agree"] else "DISAGREE",
            )
        for b in r["per_batch"]:
            log.info(
                "  B %4d: step %.2f ms measured, %.2f ms roofline (x%.1f); bounds %s; load %s",
                b["batch"],
                b["measured_step_ms"],
                b["roofline_step_ms"],
                b["measured_over_roofline"],
                b["bounds"],
                b["load_avg_1m"],
            )
    path = write_json(
        cfg.out,
        {"benchmark": "regime_check", "results": cfg.results, "spec": sheet.to_dict(), "checks": rows},
    )
    log.info("wrote %s", path)
    return rows


if __name__ == "__main__":
    main()
